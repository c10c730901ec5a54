using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class HandoffTests(ITestOutputHelper output)
{
    [Fact]
    public async Task MigrateRollbackMigrate_ThreeProcessesUnderLoad_NothingLostNothingReordered()
    {
        const string id = "handoff";
        await using var migration = await Migration.StartAsync();
        var instances = new List<ExternalInstance>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                instances.Add(await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency"));
            }

            var (exit, migrated) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "3");
            Assert.True(exit == 0, migrated);
            Assert.Contains("cutover: handoff", migrated); // chosen, and said so
            await AssertPrimaryAsync(migration, primary: migration.Target, replica: migration.Source);

            (exit, var rolledBack) = await CoordinatorCli.RunAsync(migration, id, "rollback", "--expect-instances", "3");
            Assert.True(exit == 0, rolledBack);
            await AssertPrimaryAsync(migration, primary: migration.Source, replica: migration.Target);

            (exit, var again) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "3");
            Assert.True(exit == 0, again);
            await AssertPrimaryAsync(migration, primary: migration.Target, replica: migration.Source);
            output.WriteLine(migrated);
            output.WriteLine(rolledBack);
            output.WriteLine(again);
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
                output.WriteLine($"{run.Writes} writes, max latency {run.MaxLatencyMs} ms, {run.Slow.Length} commands over 5 ms");
                foreach (var (at, ms) in run.Slow.Where(s => s.Ms > 40))
                {
                    output.WriteLine($"  slow {at:HH:mm:ss.fff} {ms:0.0} ms");
                }
                Assert.True(run.Errors == 0, run.Output);
                Assert.True(run.Violations == 0, run.Output);
                Assert.True(run.Writes > 1_000, run.Output);
                Assert.Empty(await ConsistencyLoad.MissingOnAsync(migration.TargetDb, run.Expected)); // counters exact, every write there
            }
        }
    }

    private static async Task AssertPrimaryAsync(Migration migration, RedisServerProcess primary, RedisServerProcess replica)
    {
        Assert.Contains("role:master", await migration.InfoAsync(primary, "replication"));
        var info = await migration.InfoAsync(replica, "replication");
        Assert.Contains("role:slave", info);
        Assert.Contains($"master_port:{primary.Port}", info);
    }
}
