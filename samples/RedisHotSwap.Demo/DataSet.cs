using StackExchange.Redis;

namespace RedisHotSwap.Demo;

/// <summary>
/// What SOURCE holds before the migration: keys of every common type (strings, hashes, lists, sets, sorted sets,
/// streams, keys with a TTL) spread over databases 0 and 1, written in pipelined batches.
/// </summary>
internal static class DataSet
{
    private const int Batch = 5_000;

    /// <summary>Writes <paramref name="keys"/> keys; reports how many are written.</summary>
    public static async Task SeedAsync(IConnectionMultiplexer redis, int keys, IProgress<int> progress, CancellationToken cancellationToken)
    {
        // Strings land in database 0 under seed:string:{n} for n below StringKeys(keys): the instances read those.
        for (var start = 0; start < keys; start += Batch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var count = Math.Min(Batch, keys - start);
            await Task.WhenAll(Enumerable.Range(start, count).Select(n => WriteAsync(redis, n)));
            progress.Report(start + count);
        }
    }

    /// <summary>How many <c>seed:string:{n}</c> keys a data set of <paramref name="keys"/> keys has in database 0.</summary>
    public static int StringKeys(int keys) => keys * 4 / 10;

    // Of each ten keys: four strings (database 0), then a hash, a list, a set, a sorted set, a stream and a string
    // with a TTL, alternating between databases 0 and 1.
    private static Task WriteAsync(IConnectionMultiplexer redis, int n)
    {
        var kind = n % 10;
        if (kind < 4)
        {
            return redis.GetDatabase(0).StringSetAsync($"seed:string:{(n / 10 * 4) + kind}", Value(n), flags: CommandFlags.FireAndForget);
        }

        var db = redis.GetDatabase(n / 10 % 2);
        return kind switch
        {
            4 => db.HashSetAsync($"seed:hash:{n}", [new("name", $"user {n}"), new("email", $"user{n}@example.com"), new("visits", n % 97)]),
            5 => db.ListRightPushAsync($"seed:list:{n}", [Value(n), Value(n + 1), Value(n + 2)]),
            6 => db.SetAddAsync($"seed:set:{n}", ["red", "green", "blue", n.ToString(System.Globalization.CultureInfo.InvariantCulture)]),
            7 => db.SortedSetAddAsync($"seed:zset:{n}", [new("alice", n), new("bob", n * 2), new("carol", n * 3)]),
            8 => db.StreamAddAsync($"seed:stream:{n}", [new("event", "login"), new("user", n)]),
            _ => db.StringSetAsync($"seed:session:{n}", Value(n), TimeSpan.FromHours(1)),
        };
    }

    private static string Value(int n) => $"value-{n}-{new string('x', 64)}";
}
