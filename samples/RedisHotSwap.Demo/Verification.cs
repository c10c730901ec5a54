using StackExchange.Redis;

namespace RedisHotSwap.Demo;

/// <summary>What the demo checks on the servers afterwards.</summary>
internal static class Verification
{
    /// <summary>How many acknowledged writes TARGET lacks (absent, or holding another value).</summary>
    public static async Task<long> MissingAsync(IDatabase target, IEnumerable<(string Prefix, long Count, HashSet<long> Failed)> writers, CancellationToken cancellationToken)
    {
        var missing = 0L;
        foreach (var (prefix, count, failed) in writers)
        {
            for (var start = 0L; start < count; start += 2_000)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var numbers = Enumerable.Range(0, (int)Math.Min(2_000, count - start)).Select(i => start + i).Where(n => !failed.Contains(n)).ToArray();
                var values = await target.StringGetAsync([.. numbers.Select(n => (RedisKey)$"{prefix}:{n}")]);
                missing += numbers.Where((n, i) => values[i].IsNull || (long)values[i] != n).LongCount();
            }
        }

        return missing;
    }

    /// <summary>Keys per database, from INFO keyspace (<c>db0</c> → count).</summary>
    public static async Task<IReadOnlyDictionary<string, long>> KeysPerDatabaseAsync(IConnectionMultiplexer redis)
    {
        var server = redis.GetServers()[0];
        var info = await server.InfoAsync("keyspace");
        return info.SelectMany(group => group)
            .Where(pair => pair.Key.StartsWith("db", StringComparison.Ordinal))
            .ToDictionary(pair => pair.Key, pair => long.Parse(pair.Value.Split(',')[0]["keys=".Length..], System.Globalization.CultureInfo.InvariantCulture));
    }
}
