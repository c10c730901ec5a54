using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>Another coordinator taking a migration over from one that stalled behind its fence on SOURCE.</summary>
internal static class Takeover
{
    /// <summary>The lease key's value once the other coordinator holds it.</summary>
    public static string OtherHolder { get; } = new LeaseHolder("other-token", "elsewhere", 4242, "migrate", DateTimeOffset.UnixEpoch).ToJson();

    /// <summary>
    /// The stalled coordinator's clock jumps past its lease; meanwhile the other one took the lease, lifted the stale
    /// pause (as a resumed run does) and put its own fence (<c>min-replicas-to-write</c> <paramref name="fence"/>) and pause on SOURCE.
    /// </summary>
    public static void BehindTheFence(Migration migration, string migrationId, StallingTimeProvider stalled, string fence)
    {
        stalled.Stall(TimeSpan.FromHours(1)); // longer than any extension of the lease over a pause
        var source = migration.SourceAdmin.GetServer(migration.Source.Endpoint);
        source.Execute("CLIENT", "UNPAUSE");
        migration.SourceDb.StringSet(MigrationKeys.Lease(migrationId), OtherHolder, TimeSpan.FromMinutes(1));
        source.ConfigSet("min-replicas-to-write", fence);
        source.Execute("CLIENT", "PAUSE", "60000", "WRITE");
    }
}
