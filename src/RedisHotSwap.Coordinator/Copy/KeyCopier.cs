using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Copy;

/// <summary>
/// Copies keys of one database from SOURCE to TARGET as they are now: type, value and remaining time to live. A key
/// gone from SOURCE is deleted on TARGET (an expired or deleted key never comes back there). SOURCE is only read.
/// </summary>
/// <remarks>
/// Per batch: <c>PTTL</c>, a size estimate (<c>MEMORY USAGE</c>, when SOURCE allows it) and <c>DUMP</c> of every key
/// under <see cref="BigKeyBytes"/>, then <c>RESTORE ... REPLACE ABSTTL</c> of them all on TARGET, pipelined: over a lane
/// of the copy's own connections where both sides allow it (<c>KeyCopier.Lanes.cs</c>), through StackExchange.Redis
/// elsewhere (<see cref="SourceProbe"/>). A payload TARGET refuses (another server's format; Garnet restores only
/// strings) is remembered by its type byte, and keys of that type are copied with type-level commands from then on,
/// into a temporary key renamed into place. A key over the threshold
/// is read in chunks (<c>GETRANGE</c>, <c>HSCAN</c>, <c>SSCAN</c>, <c>ZSCAN</c>, <c>LRANGE</c>, <c>XRANGE</c>) into a
/// temporary key in the same cluster slot, which <c>RENAME</c> then moves into place at once.
/// </remarks>
/// <param name="source">SOURCE, only read.</param>
/// <param name="target">TARGET.</param>
/// <param name="lanes">The copy's own connections where both sides allow them (see <see cref="CopyLanes"/>); null: every command goes through StackExchange.Redis.</param>
internal sealed partial class KeyCopier(IConnectionMultiplexer source, IConnectionMultiplexer target, CopyLanes? lanes = null) : IDisposable
{
    private const int ChunkElements = 1000;
    private const int ChunkBytes = 1 << 20;

    // Payload bytes copied at once within a page (one key more at most).
    private const long GroupBytes = 8L << 20;
    // By a payload's type byte: read without a lock on every key (a stale read costs one refused RESTORE, which falls back).
    private readonly bool[] refusedTypes = new bool[256];
    private SourceProbe probe = new();

    // The slow copies in flight, by temporary key: two of one key, or of two keys such as "x" and "{x}", would share it
    // (SCAN may return a key twice, and a retried page starts its slow copies again), so the second starts once the first has ended.
    private readonly Dictionary<(int Database, RedisKey Key), Task> slow = [];

    /// <summary>Keys estimated larger than this are copied in chunks.</summary>
    /// <value>The default value is 8 MiB.</value>
    public long BigKeyBytes
    {
        get => probe.BigKeyBytes;
        init => probe = new SourceProbe { BigKeyBytes = value };
    }

    /// <summary>Whether pages go over the copy's own connections (<see cref="CopyLanes"/>).</summary>
    internal bool HasLanes => lanes is not null;

    /// <summary>How pages are copied, for the progress lines.</summary>
    public string Path => lanes is null ? "through StackExchange.Redis" : "over the copy's own connections";

    /// <summary>How many keys were copied, deleted, copied type by type, and copied in chunks.</summary>
    public CopyCounters Counters { get; } = new();

    /// <summary>Copies <paramref name="keys"/> of database <paramref name="database"/>; protocol keys are skipped.</summary>
    /// <remarks>
    /// The page goes in groups of at most <see cref="GroupBytes"/> (by payload, or SOURCE's estimate): all of a group's
    /// <c>RESTORE</c>s are written at once and awaited once, so a key costs TARGET one command and the client no await of
    /// its own, and a page of large values never has more than a group's bytes in flight (a command's timeout counts
    /// from when it was queued). Only keys a payload cannot carry (big, refused, gone) take the slower paths.
    /// </remarks>
    public async Task CopyAsync(int database, IReadOnlyList<RedisKey> keys)
    {
        var batch = keys.Where(k => !MigrationKeys.IsProtocolKey(k)).ToArray();
        if (batch.Length == 0)
        {
            return;
        }

        var from = source.GetDatabase(database);
        var to = target.GetDatabase(database);
        if (lanes is not null)
        {
            await CopyOverLaneAsync(from, to, batch).ConfigureAwait(false);
            return;
        }

        // Expiry as an absolute time: a relative one would lengthen every key's life by the time the copy takes.
        var askedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var probes = await probe.ReadAsync(from, batch).ConfigureAwait(false);
        var others = new List<Task>();
        for (int start = 0, end; start < batch.Length; start = end)
        {
            long bytes = 0;
            for (end = start; end < batch.Length && (end == start || bytes <= GroupBytes); end++)
            {
                bytes += probes[end].Payload?.Length ?? Math.Max(probes[end].Size, 0);
            }

            await SourceProbe.DumpAsync(from, batch, probes, start, end).ConfigureAwait(false);
            await RestoreGroupAsync(from, to, batch, probes, start, end, askedAt, others).ConfigureAwait(false);
        }

        await Task.WhenAll(others).ConfigureAwait(false);
    }

    /// <summary>Writes keys <paramref name="start"/> to <paramref name="end"/> (excluded); the slower paths are added to <paramref name="others"/>.</summary>
    private async Task RestoreGroupAsync(IDatabase from, IDatabase to, RedisKey[] keys, KeyProbe[] probes, int start, int end, long askedAt, List<Task> others)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var restores = new Task<RedisResult>?[end - start];

        // One batch: the group's RESTOREs written at once (one lock, one flush), not key by key.
        var writes = to.CreateBatch();
        for (var i = start; i < end; i++)
        {
            var (key, (ttl, big, _, payload)) = (keys[i], probes[i]);
            var expiresAtMs = ExpiresAt(ttl, askedAt);
            if (Gone(ttl, expiresAtMs, now))
            {
                others.Add(DeleteAsync(to, key)); // gone, or expired meanwhile (and RESTORE reads 0 as "no expiry")
            }
            else if (big)
            {
                others.Add(CopyInChunksAsync(from, to, key));
            }
            else if (payload is null || Refused(payload))
            {
                // Gone between PTTL and DUMP, a SOURCE that cannot dump this type, or a TARGET that cannot restore it.
                others.Add(CopyByTypeAsync(from, to, key));
            }
            else
            {
                restores[i - start] = writes.ExecuteAsync("RESTORE", key, expiresAtMs, payload, "REPLACE", "ABSTTL");
            }
        }

        writes.Execute();
        try
        {
            await Task.WhenAll(restores.OfType<Task>()).ConfigureAwait(false);
        }
        catch (RedisServerException)
        {
            // Looked at one by one below.
        }

        for (var i = start; i < end; i++)
        {
            if (restores[i - start] is not { } restore)
            {
                continue;
            }

            var payload = probes[i].Payload!;
            if (restore.IsCompletedSuccessfully)
            {
                Counters.Restored(payload.Length);
            }
            else if (restore.Exception?.InnerException is RedisServerException)
            {
                Volatile.Write(ref refusedTypes[TypeOf(payload)], true);
                others.Add(CopyByTypeAsync(from, to, keys[i]));
            }
            else
            {
                await restore.ConfigureAwait(false); // a connection or timeout problem: the batch fails as a whole
            }
        }
    }

    // A payload's first byte is its type (RDB type), so one refused payload stands for every payload of its type.
    private static byte TypeOf(ReadOnlySpan<byte> payload) => payload.Length > 0 ? payload[0] : (byte)0;

    private bool Refused(ReadOnlySpan<byte> payload) => Volatile.Read(ref refusedTypes[TypeOf(payload)]);

    // RESTORE ... ABSTTL's expiry from PTTL's answer: 0 for none (-1), the moment it lapses otherwise.
    private static long ExpiresAt(long ttl, long askedAt) => ttl < 0 ? 0 : askedAt + ttl;

    // Gone from SOURCE, or expired meanwhile (and RESTORE reads 0 as "no expiry"): deleted on TARGET.
    private static bool Gone(long ttl, long expiresAtMs, long now) => ttl == -2 || (expiresAtMs > 0 && expiresAtMs <= now);

    public void Dispose() => lanes?.Dispose();

    private async Task DeleteAsync(IDatabase to, RedisKey key)
    {
        await to.KeyDeleteAsync(key).ConfigureAwait(false);
        Counters.Deleted();
    }

    /// <summary>
    /// Reads the whole value with its type's commands, writes it to a temporary key beside it (same cluster slot) with its
    /// time to live, and renames that into place: TARGET never shows half a value, and no transaction is needed (the
    /// client cannot drive Garnet's).
    /// </summary>
    private Task CopyByTypeAsync(IDatabase from, IDatabase to, RedisKey key) => OneAtATime(to, key, () => CopyByTypeNowAsync(from, to, key));

    private async Task CopyByTypeNowAsync(IDatabase from, IDatabase to, RedisKey key)
    {
        var value = await TypedValue.ReadAsync(from, key).ConfigureAwait(false);
        if (value is null)
        {
            await DeleteAsync(to, key).ConfigureAwait(false);
            return;
        }

        if (value.Type == RedisType.String)
        {
            // One command sets value and expiry at once: nothing to stage.
            // SET ... PX never leaves the key without its expiry; PEXPIREAT right behind it then sets the exact moment
            // (SET ... PXAT would do both, but Garnet refuses it).
            if (value.ExpiresAt is { } at)
            {
                var left = at - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    await DeleteAsync(to, key).ConfigureAwait(false);
                    return;
                }

                await Task.WhenAll(to.StringSetAsync(key, value.StringValue, new Expiration(left)), to.KeyExpireAsync(key, at)).ConfigureAwait(false);
            }
            else
            {
                await to.StringSetAsync(key, value.StringValue).ConfigureAwait(false);
            }

            Counters.Typed();
            return;
        }

        if (TemporaryKey(key) is not { } temporary)
        {
            throw new NotSupportedException($"key '{key}' has braces that leave no temporary key in its cluster slot; rename it, or copy it by hand.");
        }

        await to.KeyDeleteAsync(temporary).ConfigureAwait(false);
        try
        {
            await Task.WhenAll(value.Writes(to, temporary)).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.Contains("unknown command", StringComparison.OrdinalIgnoreCase))
        {
            throw new NotSupportedException(
                $"TARGET does not support {value.Type} keys ({ex.Message}), so '{key}' cannot be copied; remove such keys from SOURCE, or choose a TARGET that supports them.", ex);
        }

        if (value.ExpiresAt is { } expiresAt)
        {
            await to.KeyExpireAsync(temporary, expiresAt).ConfigureAwait(false);
        }

        await to.KeyRenameAsync(temporary, key).ConfigureAwait(false);
        Counters.Typed();
    }

    /// <summary>A big key: read in chunks into a temporary key beside it (same cluster slot), then renamed into place.</summary>
    private Task CopyInChunksAsync(IDatabase from, IDatabase to, RedisKey key) => OneAtATime(to, key, () => CopyInChunksNowAsync(from, to, key));

    private async Task CopyInChunksNowAsync(IDatabase from, IDatabase to, RedisKey key)
    {
        if (TemporaryKey(key) is not { } temporary)
        {
            await CopyByTypeNowAsync(from, to, key).ConfigureAwait(false);
            return;
        }

        await to.KeyDeleteAsync(temporary).ConfigureAwait(false);
        var type = await from.KeyTypeAsync(key).ConfigureAwait(false);
        switch (type)
        {
            case RedisType.String:
                var length = await from.StringLengthAsync(key).ConfigureAwait(false);
                for (long offset = 0; offset < length; offset += ChunkBytes)
                {
                    var chunk = await from.StringGetRangeAsync(key, offset, offset + ChunkBytes - 1).ConfigureAwait(false);
                    await to.StringAppendAsync(temporary, chunk).ConfigureAwait(false);
                }

                break;
            case RedisType.Hash:
                await foreach (var page in Pages(from.HashScanAsync(key, pageSize: ChunkElements)).ConfigureAwait(false))
                {
                    await to.HashSetAsync(temporary, page).ConfigureAwait(false);
                }

                break;
            case RedisType.Set:
                await foreach (var page in Pages(from.SetScanAsync(key, pageSize: ChunkElements)).ConfigureAwait(false))
                {
                    await to.SetAddAsync(temporary, page).ConfigureAwait(false);
                }

                break;
            case RedisType.SortedSet:
                await foreach (var page in Pages(from.SortedSetScanAsync(key, pageSize: ChunkElements)).ConfigureAwait(false))
                {
                    await to.SortedSetAddAsync(temporary, page).ConfigureAwait(false);
                }

                break;
            case RedisType.List:
                for (long start = 0; ; start += ChunkElements)
                {
                    var items = await from.ListRangeAsync(key, start, start + ChunkElements - 1).ConfigureAwait(false);
                    if (items.Length == 0)
                    {
                        break;
                    }

                    await to.ListRightPushAsync(temporary, items).ConfigureAwait(false);
                }

                break;
            case RedisType.Stream:
                RedisValue after = "-";
                while (true)
                {
                    var entries = await from.StreamRangeAsync(key, after, "+", ChunkElements).ConfigureAwait(false);
                    foreach (var entry in entries)
                    {
                        await to.StreamAddAsync(temporary, entry.Values, entry.Id).ConfigureAwait(false);
                    }

                    if (entries.Length < ChunkElements)
                    {
                        break;
                    }

                    after = "(" + entries[^1].Id;
                }

                break;
            default:
                await CopyByTypeNowAsync(from, to, key).ConfigureAwait(false);
                return;
        }

        var askedAt = DateTime.UtcNow;
        var ttl = (long)await from.ExecuteAsync("PTTL", key).ConfigureAwait(false);
        if (ttl > 0)
        {
            await to.KeyExpireAsync(temporary, askedAt.AddMilliseconds(ttl)).ConfigureAwait(false);
        }

        if (ttl != -2 && await to.KeyExistsAsync(temporary).ConfigureAwait(false))
        {
            await to.KeyRenameAsync(temporary, key).ConfigureAwait(false);
        }
        else
        {
            await to.KeyDeleteAsync([temporary, key]).ConfigureAwait(false); // emptied, expired or gone meanwhile
        }

        Counters.Chunked();
    }

    private Task OneAtATime(IDatabase to, RedisKey key, Func<Task> copy)
    {
        // By temporary key, not by key: "x" and "{x}" share one ("{x}:...copying").
        var id = (to.Database, TemporaryKey(key) ?? key);
        Task next;
        lock (slow)
        {
            next = AfterAsync(slow.GetValueOrDefault(id, Task.CompletedTask), copy);
            slow[id] = next;
        }

        _ = next.ContinueWith(
            _ =>
            {
                lock (slow)
                {
                    if (slow.TryGetValue(id, out var last) && last == next)
                    {
                        slow.Remove(id);
                    }
                }
            },
            CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return next;

        static async Task AfterAsync(Task before, Func<Task> copy)
        {
            await before.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ForceYielding);
            await copy().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A temporary key in the same cluster slot as <paramref name="key"/>: its hash tag kept, or the whole key made
    /// the tag; null when the key's braces make that impossible.
    /// </summary>
    internal static RedisKey? TemporaryKey(RedisKey key)
    {
        var name = (string?)key ?? string.Empty;
        var open = name.IndexOf('{', StringComparison.Ordinal);
        var close = open < 0 ? -1 : name.IndexOf('}', open + 1);
        if (open >= 0 && close > open + 1)
        {
            return $"{name}:{MigrationKeys.Prefix}copying"; // the first hash tag stays the first
        }

        return name.Contains('{', StringComparison.Ordinal) || name.Contains('}', StringComparison.Ordinal)
            ? null
            : $"{{{name}}}:{MigrationKeys.Prefix}copying";
    }

    private static async IAsyncEnumerable<T[]> Pages<T>(IAsyncEnumerable<T> items)
    {
        var page = new List<T>(ChunkElements);
        await foreach (var item in items.ConfigureAwait(false))
        {
            page.Add(item);
            if (page.Count == ChunkElements)
            {
                yield return [.. page];
                page.Clear();
            }
        }

        if (page.Count > 0)
        {
            yield return [.. page];
        }
    }
}

/// <summary>What a copier did, counted safely from concurrent batches.</summary>
internal sealed class CopyCounters
{
    private long restored;
    private long restoredBytes;
    private long deleted;
    private long typed;
    private long chunked;

    public long Copied => Interlocked.Read(ref restored) + Interlocked.Read(ref typed) + Interlocked.Read(ref chunked);

    public long Bytes => Interlocked.Read(ref restoredBytes);

    public long DeletedKeys => Interlocked.Read(ref deleted);

    public long TypedKeys => Interlocked.Read(ref typed);

    public long ChunkedKeys => Interlocked.Read(ref chunked);

    public void Restored(long bytes)
    {
        Interlocked.Increment(ref restored);
        Interlocked.Add(ref restoredBytes, bytes);
    }

    public void Deleted() => Interlocked.Increment(ref deleted);

    public void Typed() => Interlocked.Increment(ref typed);

    public void Chunked() => Interlocked.Increment(ref chunked);
}
