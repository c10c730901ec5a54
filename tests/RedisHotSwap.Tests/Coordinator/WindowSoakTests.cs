using RedisHotSwap.Coordinator;
using RedisHotSwap.Protocol;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class WindowSoakTests(ITestOutputHelper output)
{
    /// <summary>
    /// Window migrations back and forth under the checked load of three instance processes, each flipped by its
    /// operator. There is no rollback in the window mode: back is a migration of its own, with an id of its own, from
    /// the server that is the primary now to the other, after 'finish' and a change of the instances' settings that
    /// names them so (SOURCE the primary now, TARGET the other, the new id, UseTarget off), made in turn the two ways an
    /// operator may: a rolling deploy (new processes start before the old ones stop: the load never stops) and a
    /// live reconfiguration of the running processes (the settings file replaced in one change). Either is complete
    /// before the next migration starts.
    /// </summary>
    [Fact]
    public async Task Soak_WindowMigrationsBackAndForth_ThreeProcessesFlippedUnderLoad_NothingLost()
    {
        await using var migration = await Migration.StartAsync();
        var instances = new List<ExternalInstance>();
        var deployed = instances;
        var cutovers = Soak.Cutovers;
        try
        {
            await Soak.StartInstancesAsync(instances, HotSwapApp.Settings(migration, migrationId: "window0"));
            for (var i = 0; i < cutovers; i++)
            {
                var (servers, id) = (i % 2 == 0 ? migration : migration.Back, $"window{i}");
                var settings = HotSwapApp.Settings(servers, migrationId: id);
                if (i % 2 == 1)
                {
                    // A rolling deploy: the new processes' writes go to the primary from their first, and the old ones'
                    // (held there by the finished migration's directive) are checked there once they have stopped.
                    deployed = [];
                    await Soak.StartInstancesAsync(deployed, settings);
                    var retired = instances;
                    instances = deployed;
                    await Soak.StopAndCheckAsync(retired, servers.SourceDb, output, readYourWrites: false);
                }
                else if (i > 0)
                {
                    // A live reconfiguration: each process leaves the finished migration for the new one, and moves from
                    // the old name of the primary (TARGET, directed) to its new one (SOURCE, configured): the same server.
                    foreach (var instance in instances)
                    {
                        await instance.ReplaceSettingsAsync(settings);
                    }

                    await using var observer = await CoordinatorCli.ObserverAsync(servers, id);
                    await Eventually.TrueAsync(async () => (await observer.StatusAsync()).Instances.Count(r => r.Side == RedisSide.Source) == instances.Count,
                        "every instance to report SOURCE under the new migration id");
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
                // The test's own client learns the old primary's role anew (it was a replica before the finish), so
                // that the server itself answers the write.
                await servers.SourceAdmin.ConfigureAsync();
                var refused = await Assert.ThrowsAsync<StackExchange.Redis.RedisServerException>(() => servers.SourceDb.StringSetAsync("__test:fenced", "taken?"));
                Assert.StartsWith("NOREPLICAS", refused.Message); // the old primary refuses writes until it is migrated back to
            }

            // Not read-your-writes across an instance's switch in the window mode (see the README): reads are counted, not checked.
            var primary = cutovers % 2 == 1 ? migration.TargetAdmin : migration.SourceAdmin;
            await Soak.StopAndCheckAsync(instances, primary.GetDatabase(), output, readYourWrites: false);
        }
        finally
        {
            await Soak.DisposeAsync([.. instances, .. deployed]); // after a failure: its own message stands, these only stop
        }
    }
}
