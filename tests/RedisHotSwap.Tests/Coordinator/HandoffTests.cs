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
        var cutovers = Soak.Cutovers;
        try
        {
            await Soak.StartInstancesAsync(instances, HotSwapApp.Settings(migration, migrationId: id));
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

            var primary = cutovers % 2 == 1 ? migration.TargetAdmin : migration.SourceAdmin;
            await Soak.StopAndCheckAsync(instances, primary.GetDatabase(), output, readYourWrites: true);
        }
        finally
        {
            await Soak.DisposeAsync(instances); // after a failure: its own message stands, these only stop
        }
    }

    private static async Task AssertPrimaryAsync(Migration migration, RedisServerProcess primary, RedisServerProcess replica)
    {
        Assert.Contains("role:master", await migration.InfoAsync(primary, "replication"));
        var info = await migration.InfoAsync(replica, "replication");
        Assert.Contains("role:slave", info);
        Assert.Contains($"master_port:{primary.Port}", info);
    }

    // An instance moves on its own on a sealed answer only while TARGET answers through the connection it armed on (a
    // restarted TARGET would not). A connection merely made again (an idle timeout, a network blip: here CLIENT KILL)
    // must not turn an ordinary handoff into errors: the demoted answer that follows the promotion still moves them.
    [Fact]
    public async Task Handoff_AfterEachArmedConnectionWasDroppedOnce_NoInstanceSeesAnError()
    {
        const string id = "redialled";
        await using var migration = await Migration.StartAsync();
        var instances = new List<ExternalInstance>();
        try
        {
            await Soak.StartInstancesAsync(instances, HotSwapApp.Settings(migration, migrationId: id));
            var run = CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "3");
            await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Arming);
            long[] armed = [];
            await Eventually.TrueAsync(async () =>
            {
                var clients = (string)(await migration.TargetDb.ExecuteAsync("CLIENT", "LIST", "TYPE", "normal"))!;
                armed = clients.Split('\n').Where(l => l.Contains("name=redis-hotswap/", StringComparison.Ordinal))
                    .Select(l => long.Parse(System.Text.RegularExpressions.Regex.Match(l, @"(?:^|[ :])id=(\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                return armed.Length >= 3;
            }, "the three armed connections on TARGET", TimeSpan.FromSeconds(60));
            foreach (var client in armed)
            {
                await migration.TargetDb.ExecuteAsync("CLIENT", "KILL", "ID", client);
            }

            var (exit, said) = await run;
            Assert.True(exit == 0, said);
            await Soak.StopAndCheckAsync(instances, migration.TargetAdmin.GetDatabase(), output, readYourWrites: true);
        }
        finally
        {
            await Soak.DisposeAsync(instances);
        }
    }
}
