using RedisHotSwap.Compatibility.Tests.Infrastructure;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Compatibility.Tests;

public sealed class MigrationTests
{
    [Fact]
    public async Task Migrate_EveryLibraryInUseOnTwoInstances_SurfacesNothingAndLosesNoSettledMessage()
    {
        const string id = "compatibility";
        await using var migration = await Migration.StartAsync();
        await using var a = await WebInstance.StartAsync(migration, id);
        await using var b = await WebInstance.StartAsync(migration, id);
        await using var workload = await LibraryWorkload.StartAsync(a, b);
        var settledFrom = workload.LastSent + 1;
        await Eventually.TrueAsync(() => Task.FromResult(workload.Received.Keys.Any(n => n > settledFrom + 50)), "chat messages on SOURCE");
        var beforeSwitches = (settledFrom, workload.LastSent);

        var options = new CoordinatorOptions
        {
            Source = migration.Source.ConfigurationString,
            Target = migration.Target.ConfigurationString,
            MigrationId = id,
            ExpectedInstances = 2,
            PollInterval = TimeSpan.FromMilliseconds(50),
            SyncTimeout = TimeSpan.FromMinutes(1),
            InstancesTimeout = TimeSpan.FromMinutes(1),
        };
        await using var coordinator = await MigrationCoordinator.ConnectAsync(options);
        // The handoff (the default cutover): instances armed ahead, moved by the coordinator, no operator at the switch.
        var status = await coordinator.MigrateAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(MigrationPhase.Promoted, status.Phase);
        Assert.Equal(RedisHotSwap.RedisSide.Target, a.Controller.ActiveSide);
        Assert.Equal(RedisHotSwap.RedisSide.Target, b.Controller.ActiveSide);
        settledFrom = workload.LastSent + 1;
        await Eventually.TrueAsync(() => Task.FromResult(workload.Received.Keys.Any(n => n > settledFrom + 50)), "chat messages on the promoted TARGET");
        var afterPromotion = (settledFrom, workload.LastSent);
        await workload.DisposeAsync();

        Assert.Empty(workload.Failures);
        var expected = Enumerable.Range(beforeSwitches.settledFrom, beforeSwitches.Item2 - beforeSwitches.settledFrom + 1)
            .Concat(Enumerable.Range(afterPromotion.settledFrom, afterPromotion.Item2 - afterPromotion.settledFrom + 1)).ToArray();
        await Eventually.TrueAsync(() => Task.FromResult(expected.All(workload.Received.ContainsKey)), "every settled chat message");
        Assert.Empty(a.Errors);
        Assert.Empty(b.Errors);
    }
}
