using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator;

/// <summary>The live instances of a migration, read from both servers (each instance reports to the side it uses).</summary>
internal sealed class InstanceDirectory(RedisNode source, RedisNode target, string migrationId)
{
    /// <summary>Every instance whose report has not expired, by its newest report.</summary>
    public async Task<IReadOnlyList<InstanceReport>> LiveAsync()
    {
        var set = MigrationKeys.Instances(migrationId);
        var ids = (await source.ReadAsync(db => db.SetMembersAsync(set), []).ConfigureAwait(false))
            .Concat(await target.ReadAsync(db => db.SetMembersAsync(set), []).ConfigureAwait(false))
            .Select(v => (string)v!)
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        if (ids.Length == 0)
        {
            return [];
        }

        var keys = ids.SelectMany(id => new[] { MigrationKeys.Instance(migrationId, id, RedisSide.Source), MigrationKeys.Instance(migrationId, id, RedisSide.Target) }).ToArray();
        var onSource = await source.ReadAsync(db => GetEachAsync(db, keys), new RedisValue[keys.Length]).ConfigureAwait(false);
        var onTarget = await target.ReadAsync(db => GetEachAsync(db, keys), new RedisValue[keys.Length]).ConfigureAwait(false);
        return ids
            .Select((_, i) => new[] { onSource[2 * i], onSource[(2 * i) + 1], onTarget[2 * i], onTarget[(2 * i) + 1] }
                .Select(json => InstanceReport.FromJson(json))
                .OfType<InstanceReport>()
                .MaxBy(r => r.Sequence))
            .OfType<InstanceReport>()
            .OrderBy(r => r.InstanceId, StringComparer.Ordinal)
            .ToArray();
    }

    // One GET per key, pipelined: the reports of a cluster lie in different slots, where one MGET cannot reach them all.
    private static Task<RedisValue[]> GetEachAsync(IDatabase db, RedisKey[] keys) => Task.WhenAll(keys.Select(k => db.StringGetAsync(k)));
}
