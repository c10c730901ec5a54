using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Copy;

/// <summary>The copy of a page over a lane of the copy's own connections (<see cref="CopyLanes"/>).</summary>
internal sealed partial class KeyCopier
{
    // How long a lane that sat idle has to answer a PING before it is taken for dropped and replaced.
    private static readonly TimeSpan IdleCheck = TimeSpan.FromSeconds(1);

    // Bytes of RESTOREs a lane buffers before it sends them on, while it still reads the DUMPs behind them.
    private const int FlushBytes = 256 * 1024;
    private static readonly byte[] Pttl = "PTTL"u8.ToArray();
    private static readonly byte[] Memory = "MEMORY"u8.ToArray();
    private static readonly byte[] Usage = "USAGE"u8.ToArray();
    private static readonly byte[] Dump = "DUMP"u8.ToArray();
    private static readonly byte[] Restore = "RESTORE"u8.ToArray();
    private static readonly byte[] Replace = "REPLACE"u8.ToArray();
    private static readonly byte[] AbsTtl = "ABSTTL"u8.ToArray();

    /// <summary>
    /// <see cref="CopyAsync"/> over a lane of the copy's own connections: the same commands and the same choices, with
    /// each <c>DUMP</c>'s payload copied from SOURCE's reply into TARGET's <c>RESTORE</c> as it is read. A lane whose
    /// connection failed after it sat idle (closed by the server, or dropped without a word: see the PINGs in
    /// <see cref="CopyPageAsync"/>) is replaced by a fresh one, once, and the lanes idle with it are closed (copying a
    /// page again is harmless: it reads SOURCE anew).
    /// </summary>
    private async Task CopyOverLaneAsync(IDatabase from, IDatabase to, RedisKey[] keys)
    {
        var others = new List<Task>();
        for (var attempt = 1; ; attempt++)
        {
            var lane = await lanes!.RentAsync(fresh: attempt > 1).ConfigureAwait(false);
            try
            {
                await CopyPageAsync(lane, from, to, keys, others).ConfigureAwait(false);
                lanes.Return(lane);
                break;
            }
            catch (RedisConnectionException) when (lane.Reused && attempt == 1)
            {
                lane.Dispose();
                lanes.CloseIdle(); // as old as this one
            }
            catch
            {
                lane.Dispose();
                throw;
            }
        }

        await Task.WhenAll(others).ConfigureAwait(false);
    }

    private async Task CopyPageAsync(CopyLane lane, IDatabase from, IDatabase to, RedisKey[] keys, List<Task> others)
    {
        var (reader, writer) = (lane.Source, lane.Target);
        var names = Array.ConvertAll(keys, k => (byte[])k!);
        var sized = !probe.SizeUnknown;
        if (lane.Reused)
        {
            // An idle lane may have been dropped without a word: a PING on each side, answered before anything is
            // written to TARGET, tells (a failure here leaves nothing behind, and the page goes on a fresh lane).
            reader.WritePing();
            writer.WritePing();
            await writer.FlushAsync().ConfigureAwait(false);
        }

        // First wave: PTTL and MEMORY USAGE of every key.
        var askedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var selected = reader.Select(from.Database);
        foreach (var name in names)
        {
            reader.WriteHeader(2);
            reader.WriteBulk(Pttl);
            reader.WriteBulk(name);
            if (sized)
            {
                reader.WriteHeader(3);
                reader.WriteBulk(Memory);
                reader.WriteBulk(Usage);
                reader.WriteBulk(name);
            }
        }

        await reader.FlushAsync().ConfigureAwait(false);
        if (lane.Reused)
        {
            await reader.ReadPongAsync(IdleCheck).ConfigureAwait(false);
        }

        await reader.ReadSelectedAsync(selected).ConfigureAwait(false);
        var ttls = new long[names.Length];
        var sizes = new long[names.Length];
        for (var i = 0; i < names.Length; i++)
        {
            var ttl = await reader.ReadAsync().ConfigureAwait(false);
            ttls[i] = ttl.Kind == ReplyKind.Integer ? ttl.Integer : throw Refusal(reader, ttl, "PTTL");
            sizes[i] = -1;
            if (sized && await reader.ReadAsync().ConfigureAwait(false) is var size)
            {
                if (size.Kind == ReplyKind.Integer)
                {
                    sizes[i] = size.Integer;
                }
                else if (size.Kind == ReplyKind.Error)
                {
                    probe.SizeUnknown = true; // SOURCE refuses MEMORY: every key is dumped whole
                }
            }
        }

        if (lane.Reused)
        {
            await writer.ReadPongAsync(IdleCheck).ConfigureAwait(false);
        }

        // Then DUMP and RESTORE, in groups of at most GroupBytes by SOURCE's estimate.
        for (int start = 0, end; start < names.Length; start = end)
        {
            long bytes = 0;
            for (end = start; end < names.Length && (end == start || bytes <= GroupBytes); end++)
            {
                bytes += Math.Max(sizes[end], 0);
            }

            await CopyGroupAsync(lane, from, to, keys, names, ttls, sizes, start, end, askedAt, others).ConfigureAwait(false);
        }
    }

    private async Task CopyGroupAsync(
        CopyLane lane, IDatabase from, IDatabase to, RedisKey[] keys, byte[][] names, long[] ttls, long[] sizes, int start, int end, long askedAt, List<Task> others)
    {
        var (reader, writer) = (lane.Source, lane.Target);
        for (var i = start; i < end; i++)
        {
            if (ttls[i] != -2 && sizes[i] <= BigKeyBytes)
            {
                reader.WriteHeader(2);
                reader.WriteBulk(Dump);
                reader.WriteBulk(names[i]);
            }
        }

        await reader.FlushAsync().ConfigureAwait(false);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var selected = writer.Select(to.Database);
        var restored = new List<(int Index, int Bytes, byte Type)>(end - start);
        for (var i = start; i < end; i++)
        {
            var expiresAtMs = ExpiresAt(ttls[i], askedAt);
            if (ttls[i] == -2)
            {
                others.Add(DeleteAsync(to, keys[i]));
                continue;
            }

            if (sizes[i] > BigKeyBytes)
            {
                others.Add(CopyInChunksAsync(from, to, keys[i]));
                continue;
            }

            var dump = await reader.ReadAsync().ConfigureAwait(false);
            var payload = dump.Kind == ReplyKind.Bulk ? reader.Bytes(dump) : default;
            if (Gone(ttls[i], expiresAtMs, now))
            {
                others.Add(DeleteAsync(to, keys[i]));
            }
            else if (dump.Kind != ReplyKind.Bulk || Refused(payload))
            {
                // Gone between PTTL and DUMP, a SOURCE that cannot dump this type, or a TARGET that cannot restore it.
                others.Add(CopyByTypeAsync(from, to, keys[i]));
            }
            else
            {
                writer.WriteHeader(6);
                writer.WriteBulk(Restore);
                writer.WriteBulk(names[i]);
                writer.WriteBulk(expiresAtMs);
                writer.WriteBulk(payload);
                writer.WriteBulk(Replace);
                writer.WriteBulk(AbsTtl);
                restored.Add((i, payload.Length, TypeOf(payload)));
                if (writer.Pending >= FlushBytes)
                {
                    await writer.FlushAsync().ConfigureAwait(false); // TARGET starts on them while SOURCE's replies are read
                }
            }
        }

        await writer.FlushAsync().ConfigureAwait(false);
        await writer.ReadSelectedAsync(selected).ConfigureAwait(false);
        foreach (var (index, bytes, type) in restored)
        {
            var reply = await writer.ReadAsync().ConfigureAwait(false);
            if (reply.Kind == ReplyKind.Error)
            {
                Volatile.Write(ref refusedTypes[type], true);
                others.Add(CopyByTypeAsync(from, to, keys[index]));
            }
            else
            {
                Counters.Restored(bytes);
            }
        }
    }

    private static RedisServerException Refusal(RespConnection connection, Reply reply, string command) =>
        new(RedisErrorKind.Unknown, CommandFlags.None, $"{command}: {(reply.Kind == ReplyKind.Error ? connection.Message(reply) : $"unexpected {reply.Kind} reply")}");
}
