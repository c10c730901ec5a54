using System.Globalization;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>Keys of every common type (some with a time to live) to copy, and a check that two servers hold the same.</summary>
internal static class TypedData
{
    /// <summary>Writes <paramref name="count"/> keys under <paramref name="prefix"/>: strings, hashes, lists, sets, sorted sets and streams; every third one expires in 10 minutes.</summary>
    /// <param name="db">Where to write.</param>
    /// <param name="prefix">What every key starts with.</param>
    /// <param name="count">How many keys.</param>
    /// <param name="streams">False for a server without streams (Garnet 2.2.8): sorted sets take their place.</param>
    public static async Task<RedisKey[]> SeedAsync(IDatabase db, string prefix, int count, bool streams = true)
    {
        var keys = new RedisKey[count];
        var writes = new List<Task>(count * 2);
        for (var i = 0; i < count; i++)
        {
            var key = keys[i] = $"{prefix}:{i % 6}:{i}";
            var n = i.ToString(CultureInfo.InvariantCulture);
            writes.Add((i % 6) switch
            {
                0 => db.StringSetAsync(key, $"value-{n}"),
                1 => db.HashSetAsync(key, [new("a", n), new("b", "x"), new("c", n + n)]),
                2 => db.ListRightPushAsync(key, ["1", n, "3", n]),
                3 => db.SetAddAsync(key, ["m1", n, "m3"]),
                4 or 5 when !streams => db.SortedSetAddAsync(key, [new("a", 1.5), new(n, i), new("z", -2)]),
                4 => db.SortedSetAddAsync(key, [new("a", 1.5), new(n, i), new("z", -2)]),
                _ => db.StreamAddAsync(key, [new("f", n), new("g", "h")]),
            });
            if (i % 3 == 0)
            {
                writes.Add(db.KeyExpireAsync(key, TimeSpan.FromMinutes(10)));
            }
        }

        await Task.WhenAll(writes);
        return keys;
    }

    /// <summary>Each key of <paramref name="keys"/> that differs between the two databases (type, value, or time to live by more than 1 s), with how.</summary>
    public static async Task<string[]> DifferencesAsync(IDatabase expected, IDatabase actual, IEnumerable<RedisKey> keys)
    {
        var differences = new List<string>();
        foreach (var key in keys)
        {
            var (a, b) = (await ReadAsync(expected, key), await ReadAsync(actual, key));
            if (a.Text != b.Text)
            {
                differences.Add($"{key}: {a.Text} != {b.Text}");
            }
            else if ((a.Ttl < 0) != (b.Ttl < 0) || Math.Abs(a.Ttl - b.Ttl) > 1000)
            {
                differences.Add($"{key}: ttl {a.Ttl} != {b.Ttl}");
            }
        }

        return [.. differences];
    }

    /// <summary>Each key's type and value, one line each, for comparing a server with itself before and after.</summary>
    public static async Task<string[]> SnapshotAsync(IDatabase db, IEnumerable<RedisKey> keys)
    {
        var lines = new List<string>();
        foreach (var key in keys)
        {
            lines.Add($"{key}: {(await ReadAsync(db, key)).Text}");
        }

        return [.. lines];
    }

    private static async Task<(string Text, long Ttl)> ReadAsync(IDatabase db, RedisKey key)
    {
        var type = await db.KeyTypeAsync(key);
        var ttl = (long)await db.ExecuteAsync("PTTL", key);
        var text = type switch
        {
            RedisType.None => "none",
            RedisType.String => $"string {await db.StringGetAsync(key)}",
            RedisType.Hash => "hash " + string.Join(",", (await db.HashGetAllAsync(key)).Select(e => $"{e.Name}={e.Value}").Order(StringComparer.Ordinal)),
            RedisType.List => "list " + string.Join(",", await db.ListRangeAsync(key)),
            RedisType.Set => "set " + string.Join(",", (await db.SetMembersAsync(key)).Select(v => (string)v!).Order(StringComparer.Ordinal)),
            RedisType.SortedSet => "zset " + string.Join(",", (await db.SortedSetRangeByRankWithScoresAsync(key)).Select(e => $"{e.Element}:{e.Score.ToString(CultureInfo.InvariantCulture)}")),
            RedisType.Stream => "stream " + string.Join(",", (await db.StreamRangeAsync(key)).Select(e => $"{e.Id}:" + string.Join(";", e.Values.Select(v => $"{v.Name}={v.Value}")))),
            _ => $"other {type}",
        };
        return (text, ttl);
    }
}
