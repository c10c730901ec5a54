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
        // Both sides asked at once: a cutover polls this, and every round trip is part of the pause.
        var (fromSource, fromTarget) = (source.ReadAsync(db => db.SetMembersAsync(set), []), target.ReadAsync(db => db.SetMembersAsync(set), []));
        var ids = (await fromSource.ConfigureAwait(false))
            .Concat(await fromTarget.ConfigureAwait(false))
            .Select(v => (string)v!)
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        if (ids.Length == 0)
        {
            return [];
        }

        var keys = ids.SelectMany(id => new[] { MigrationKeys.Instance(migrationId, id, RedisSide.Source), MigrationKeys.Instance(migrationId, id, RedisSide.Target) }).ToArray();
        var (readSource, readTarget) = (source.ReadAsync(db => GetEachAsync(db, keys), new RedisValue[keys.Length]), target.ReadAsync(db => GetEachAsync(db, keys), new RedisValue[keys.Length]));
        var onSource = await readSource.ConfigureAwait(false);
        var onTarget = await readTarget.ConfigureAwait(false);
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
