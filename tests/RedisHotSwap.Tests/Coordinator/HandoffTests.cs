using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class HandoffTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Soak_HandoffsBackAndForth_ThreeProcessesUnderLoad_NothingLostNothingReordered()
    {
        const string id = "handoff";
        await using var migration = await Migration.StartAsync();
        var instances = new List<ExternalInstance>();

        // A soak: CI runs three cutovers; REDIS_HOTSWAP_SOAK_CUTOVERS=20 runs the long one (see the README).
        var cutovers = int.TryParse(Environment.GetEnvironmentVariable("REDIS_HOTSWAP_SOAK_CUTOVERS"), out var n) && n > 0 ? n : 3;
        try
        {
            for (var i = 0; i < 3; i++)
            {
                instances.Add(await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency"));
            }

            for (var i = 0; i < cutovers; i++)
            {
                var forth = i % 2 == 0;
                var (exit, said) = await CoordinatorCli.RunAsync(migration, id, forth ? "migrate" : "rollback", "--expect-instances", "3");
                Assert.True(exit == 0, said);
                if (i == 0)
                {
                    Assert.Contains("cutover: handoff", said); // chosen, and said so
                }

                await AssertPrimaryAsync(migration, primary: forth ? migration.Target : migration.Source, replica: forth ? migration.Source : migration.Target);
                output.WriteLine(said);
            }
        }
        finally
        {
            var runs = new List<CheckedRun>();
            var primary = cutovers % 2 == 1 ? migration.TargetAdmin : migration.SourceAdmin;
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
                Assert.Empty(await ConsistencyLoad.MissingOnAsync(primary.GetDatabase(), run.Expected)); // counters exact, every write there
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
