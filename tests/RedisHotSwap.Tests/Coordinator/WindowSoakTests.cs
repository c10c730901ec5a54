using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class WindowSoakTests(ITestOutputHelper output)
{
    /// <summary>
    /// Window migrations back and forth under the checked load of three instance processes, each flipped by its
    /// operator. There is no rollback in the window mode: back is a migration of its own, with an id of its own, from
    /// the server that is the primary now to the other, after 'finish' and a deploy that names them so (a rolling one:
    /// the load never stops).
    /// </summary>
    [Fact(Skip = "Open finding (windowfaults branch): after a window migration back (B to A, new id, rolling deploy), one instance's first writes (w:1 of each loop) acknowledged on B were missing on A; a live reconfiguration instead gave 685 NOREPLICAS errors in one of three instances. Under investigation; see the branch report.")]
    public async Task Soak_WindowMigrationsBackAndForth_ThreeProcessesFlippedUnderLoad_NothingLost()
    {
        await using var migration = await Migration.StartAsync();
        var instances = new List<ExternalInstance>();
        var cutovers = Soak.Cutovers;
        try
        {
            await Soak.StartInstancesAsync(instances, HotSwapApp.Settings(migration, migrationId: "window0"));
            for (var i = 0; i < cutovers; i++)
            {
                var (servers, id) = (i % 2 == 0 ? migration : migration.Back, $"window{i}");
                if (i > 0)
                {
                    // The deploy after 'finish', rolling: instances configured with the primary now as SOURCE, the other
                    // server as TARGET and a new migration id start before the old ones stop, whose writes are checked there.
                    var deployed = new List<ExternalInstance>();
                    await Soak.StartInstancesAsync(deployed, HotSwapApp.Settings(servers, migrationId: id));
                    var retired = instances;
                    instances = deployed;
                    await Soak.StopAndCheckAsync(retired, servers.SourceDb, output, readYourWrites: false);
                }

                // The server migrated back to holds the data of the last migration: REPLICAOF replaces it, as it should.
                string[] args = ["migrate", "--cutover", "window", "--expect-instances", "3", .. i > 0 ? new[] { "--allow-target-data" } : []];
                var migrate = CoordinatorCli.RunAsync(servers, id, args);
                await CoordinatorCli.WaitForPhaseAsync(servers, id, MigrationPhase.Cutover);
                foreach (var instance in instances)
                {
                    await instance.SetUseTargetAsync(true); // "TARGET is writable: flip the instances now", one by one
                }

                var (exit, said) = await migrate;
                Assert.True(exit == 0, said);
                output.WriteLine(said);
                (exit, said) = await CoordinatorCli.RunAsync(servers, id, "finish");
                Assert.True(exit == 0, said);
                Assert.Contains("finished on TARGET", said);

                Assert.Contains("role:master", await servers.InfoAsync(servers.Target, "replication"));
                var refused = await Assert.ThrowsAsync<StackExchange.Redis.RedisServerException>(() => servers.SourceDb.StringSetAsync("__test:fenced", "taken?"));
                Assert.StartsWith("NOREPLICAS", refused.Message); // the old primary refuses writes until it is migrated back to
            }
        }
        finally
        {
            var primary = cutovers % 2 == 1 ? migration.TargetAdmin : migration.SourceAdmin;

            // Not read-your-writes across an instance's switch in the window mode (see the README): reads are counted, not checked.
            await Soak.StopAndCheckAsync(instances, primary.GetDatabase(), output, readYourWrites: false);
        }
    }
}
