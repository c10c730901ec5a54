using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Copy;

/// <summary>
/// Copy mode end to end: the coordinator as its own process (<c>redis-hotswap migrate --sync copy</c>), three
/// application instances as processes of their own running the checked load, against servers that refuse replication.
/// </summary>
public sealed class CopyMigrationTests(ITestOutputHelper output)
{
    /// <summary>What a managed service refuses: replication and the admin commands, renamed away as such services do.</summary>
    internal static readonly string[] ManagedService =
    [
        "rename-command REPLICAOF \"\"",
        "rename-command SLAVEOF \"\"",
        "rename-command SYNC \"\"",
        "rename-command PSYNC \"\"",
        "rename-command CONFIG \"\"",
        "rename-command CLIENT \"\"",
    ];

    [Fact]
    public async Task Migrate_ReplicationRenamedAwayThreeProcessesUnderLoad_EverythingOnTargetNothingLost()
    {
        const string id = "copy-redis";
        await using var migration = await Migration.StartAsync(sourceSettings: ManagedService, targetSettings: ManagedService);
        await AssertCopiesUnderLoadAsync(migration, id);
    }

    /// <summary>
    /// Seeds SOURCE (every common type, TTLs, two databases), runs three checked instances, migrates by copy, and checks:
    /// exit 0 only with every instance on TARGET; zero errors and violations; every acknowledged write and exact counter on
    /// TARGET; every seeded key equal on TARGET (TTL within 1 s); SOURCE's data and the seeded keys unchanged.
    /// </summary>
    internal async Task AssertCopiesUnderLoadAsync(Migration migration, string id, params string[] extra)
    {
        var seeded0 = await TypedData.SeedAsync(migration.SourceDb, "seed", 3_000);
        var seeded1 = await TypedData.SeedAsync(migration.SourceAdmin.GetDatabase(1), "seed1", 600);
        var instances = new List<ExternalInstance>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                instances.Add(await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency"));
            }

            var (exit, migrated) = await CoordinatorCli.RunAsync(migration, id, ["migrate", "--sync", "copy", "--expect-instances", "3", .. extra]);
            output.WriteLine(migrated);
            Assert.True(exit == 0, migrated);
            Assert.Contains("every instance on TARGET", migrated);
        }
        finally
        {
            var runs = new List<CheckedRun>();
            foreach (var instance in instances)
            {
                runs.Add(await instance.StopCheckedAsync());
                await instance.DisposeAsync();
            }

            foreach (var run in runs)
            {
                output.WriteLine($"{run.Writes} writes, max latency {run.MaxLatencyMs} ms");
                Assert.True(run.Errors == 0, run.Output);
                Assert.True(run.Violations == 0, run.Output);
                Assert.True(run.Writes > 1_000, run.Output);
                Assert.Empty(await ConsistencyLoad.MissingOnAsync(migration.TargetDb, run.Expected));
            }
        }

        Assert.Empty(await TypedData.DifferencesAsync(migration.SourceDb, migration.TargetDb, seeded0));
        Assert.Empty(await TypedData.DifferencesAsync(migration.SourceAdmin.GetDatabase(1), migration.TargetAdmin.GetDatabase(1), seeded1));

        // SOURCE was only read: no state, directive or mark of the migration there (the instances' own reports aside).
        var protocol = await migration.SourceAdmin.GetServer(migration.Source.Endpoint).KeysAsync(0, $"__redis-hotswap:*").ToArrayAsync();
        Assert.DoesNotContain(protocol, k => !((string)k!).Contains(":instance", StringComparison.Ordinal));
    }
}
