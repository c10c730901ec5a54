using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Copy;

/// <summary>What the copy needs to know of one SOURCE key: its time to live, its size, and its payload.</summary>
/// <param name="TimeToLiveMs"><c>PTTL</c>: -2 when the key is gone, -1 without an expiry.</param>
/// <param name="Big">Estimated over the big-key threshold: copied in chunks, never dumped whole.</param>
/// <param name="Size">SOURCE's estimate in bytes (<c>MEMORY USAGE</c>); -1 when unknown.</param>
/// <param name="Payload">Its <c>DUMP</c>; null when it is gone, big, not dumped yet, or SOURCE could not dump it.</param>
internal readonly record struct KeyProbe(long TimeToLiveMs, bool Big, long Size, byte[]? Payload);

/// <summary>
/// Reads <c>PTTL</c> and a size estimate (<c>MEMORY USAGE</c>, when SOURCE allows it) of a page of SOURCE keys, then
/// <c>DUMP</c>s the ones under the big-key threshold, each wave written as one batch (one lock, one flush). SOURCE is
/// only read.
/// </summary>
/// <remarks>
/// A read-only script doing the three commands per key in one call was tried and measured: it saved neither SOURCE's
/// CPU nor the coordinator's per key, and kept SOURCE busy a millisecond at a time, so the commands stay plain.
/// </remarks>
internal sealed class SourceProbe
{
    private volatile bool sizeUnknown;

    /// <summary>Whether SOURCE refused <c>MEMORY USAGE</c>: from then on every key is dumped whole.</summary>
    public bool SizeUnknown
    {
        get => sizeUnknown;
        set => sizeUnknown = value;
    }

    /// <summary>Keys estimated larger than this are reported big.</summary>
    public long BigKeyBytes { get; init; } = 8L << 20;

    /// <summary>Probes <paramref name="keys"/>: one entry each, in order, none dumped yet.</summary>
    public async Task<KeyProbe[]> ReadAsync(IDatabase from, RedisKey[] keys)
    {
        var reads = from.CreateBatch();
        var ttls = Array.ConvertAll(keys, k => reads.ExecuteAsync("PTTL", k));
        var sizes = sizeUnknown ? null : Array.ConvertAll(keys, k => reads.ExecuteAsync("MEMORY", "USAGE", k));
        reads.Execute();
        await Task.WhenAll(ttls).ConfigureAwait(false);
        var size = new long[keys.Length];
        Array.Fill(size, -1);
        if (sizes is not null)
        {
            try
            {
                await Task.WhenAll(sizes).ConfigureAwait(false);
                for (var i = 0; i < keys.Length; i++)
                {
                    size[i] = sizes[i].Result.IsNull ? -1 : (long)sizes[i].Result;
                }
            }
            catch (RedisServerException)
            {
                sizeUnknown = true; // SOURCE refuses MEMORY: every key is dumped whole
            }
        }

        return [.. ttls.Select((ttl, i) => new KeyProbe((long)ttl.Result, size[i] > BigKeyBytes, size[i], null))];
    }

    /// <summary>Dumps the keys from <paramref name="start"/> to <paramref name="end"/> (excluded) that still need it, at once.</summary>
    public static async Task DumpAsync(IDatabase from, RedisKey[] keys, KeyProbe[] probes, int start, int end)
    {
        var dumps = new Task<byte[]?>?[end - start];
        var reads = from.CreateBatch();
        for (var i = start; i < end; i++)
        {
            if (probes[i] is { Payload: null, Big: false, TimeToLiveMs: not -2 })
            {
                dumps[i - start] = reads.KeyDumpAsync(keys[i]);
            }
        }

        reads.Execute();
        for (var i = start; i < end; i++)
        {
            if (dumps[i - start] is { } dump)
            {
                probes[i] = probes[i] with { Payload = await DumpedAsync(dump).ConfigureAwait(false) };
            }
        }
    }

    private static async Task<byte[]?> DumpedAsync(Task<byte[]?> dump)
    {
        try
        {
            return await dump.ConfigureAwait(false);
        }
        catch (RedisServerException)
        {
            return null; // a SOURCE that cannot dump this type: the type-level copy reads it
        }
    }
}
