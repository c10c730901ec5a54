using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Coordinator;

/// <summary>The live instances of a migration, read from both servers (each instance reports to the side it uses).</summary>
internal sealed class InstanceDirectory(RedisNode source, RedisNode target, string migrationId)
{
    /// <summary>Every instance whose report has not expired, by its newest report.</summary>
    public async Task<IReadOnlyList<InstanceReport>> LiveAsync()
    {
        var ids = (await source.Database.SetMembersAsync(MigrationKeys.Instances(migrationId)).ConfigureAwait(false))
            .Concat(await target.Database.SetMembersAsync(MigrationKeys.Instances(migrationId)).ConfigureAwait(false))
            .Select(v => (string)v!)
            .Distinct(StringComparer.Ordinal)
            .ToArray();
        if (ids.Length == 0)
        {
            return [];
        }

        var keys = ids.Select(id => MigrationKeys.Instance(migrationId, id)).ToArray();
        var onSource = await source.Database.StringGetAsync(keys).ConfigureAwait(false);
        var onTarget = await target.Database.StringGetAsync(keys).ConfigureAwait(false);
        return ids
            .Select((_, i) => new[] { InstanceReport.FromJson(onSource[i]), InstanceReport.FromJson(onTarget[i]) }
                .OfType<InstanceReport>()
                .MaxBy(r => r.Sequence))
            .OfType<InstanceReport>()
            .OrderBy(r => r.InstanceId, StringComparer.Ordinal)
            .ToArray();
    }
}
