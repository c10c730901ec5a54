using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class MigrateEndToEndTests
{
    [Fact]
    public async Task Migrate_ThreeInstancesUnderLoadWhileFlagsFlip_PromotesTargetAndLosesNothing()
    {
        const string id = "e2e";
        await using var migration = await Migration.StartAsync();
        await using var first = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var second = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var external = await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id));
        await using var firstLoad = new WriteLoad(first.Multiplexer.GetDatabase(), "first", writers: 8);
        await using var secondLoad = new WriteLoad(second.Multiplexer.GetDatabase(), "second", writers: 8);

        var migrate = CoordinatorCli.InvokeAsync(migration, id, "migrate", "--cutover", "window", "--expect-instances", "3");
        await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);
        first.SetUseTarget(true);
        await external.SetUseTargetAsync(true);
        await firstLoad.MoreAsync(2_000);
        second.SetUseTarget(true);

        Assert.Equal(0, await migrate.WaitAsync(TimeSpan.FromMinutes(2)));

        // Told of the promotion, instances leave writable-replica mode for a plain connection, under load.
        await Eventually.TrueAsync(
            () => Task.FromResult(new[] { first, second }.All(a => !((RedisHotSwap.Connection.HotSwapConnectionMultiplexer)a.Multiplexer).ActiveRoute.WritableReplica)),
            "instances to reconnect to the promoted TARGET as to a primary");
        await firstLoad.MoreAsync(2_000); // still writing, now to the promoted TARGET
        await firstLoad.StopAsync();
        await secondLoad.StopAsync();
        var (externalWrites, externalErrors, externalOutput) = await external.StopAsync();

        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        var fenced = await Assert.ThrowsAsync<StackExchange.Redis.RedisServerException>(() => migration.SourceDb.StringSetAsync("late", "lost?"));
        Assert.StartsWith("NOREPLICAS", fenced.Message); // the retired SOURCE refuses writes instead of losing them
        await using (var observer = await CoordinatorCli.ObserverAsync(migration, id))
        {
            var status = await observer.StatusAsync();
            Assert.Equal(MigrationPhase.Promoted, status.Phase);
        }

        Assert.Equal(RedisSide.Target, first.Controller.ActiveSide);
        Assert.Equal(RedisSide.Target, second.Controller.ActiveSide);
        Assert.Empty(firstLoad.Errors);
        Assert.Empty(secondLoad.Errors);
        Assert.True(externalErrors == 0, externalOutput);
        var writes = firstLoad.Acknowledged.Concat(secondLoad.Acknowledged).Concat(externalWrites).ToArray();
        Assert.True(externalWrites.Length > 100, externalOutput);
        Assert.Empty(await WriteLoad.MissingOnAsync(migration.TargetDb, writes));
    }

    [Fact]
    public async Task Migrate_KilledWhileWaitingOnInstances_ResumesWithoutRepeatingReplicaOf()
    {
        const string id = "resume";
        await using var migration = await Migration.StartAsync();
        await using var first = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var second = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new WriteLoad(first.Multiplexer.GetDatabase(), "resume", writers: 8);

        using (var coordinator = CoordinatorCli.Start(migration, id, "migrate", "--cutover", "window", "--expect-instances", "2"))
        {
            await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);
            first.SetUseTarget(true); // one instance moves while the coordinator waits for both
            await load.MoreAsync(2_000);
            coordinator.Kill(entireProcessTree: true);
            await coordinator.WaitForExitAsync();
        }

        var fullSyncs = await FullSyncsAsync(migration);
        Assert.Equal(1, fullSyncs);
        second.SetUseTarget(true);

        Assert.Equal(0, await CoordinatorCli.InvokeAsync(migration, id, "migrate", "--cutover", "window", "--expect-instances", "2"));

        await load.StopAsync();
        Assert.Equal(fullSyncs, await FullSyncsAsync(migration)); // REPLICAOF was not issued again: no second full sync
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Empty(load.Errors);
        Assert.Empty(await WriteLoad.MissingOnAsync(migration.TargetDb, load.Acknowledged));
    }

    private static async Task<long> FullSyncsAsync(Migration migration)
    {
        var stats = await migration.InfoAsync(migration.Source, "stats");
        var line = stats.Split('\n').First(l => l.StartsWith("sync_full:", StringComparison.Ordinal));
        return long.Parse(line["sync_full:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
