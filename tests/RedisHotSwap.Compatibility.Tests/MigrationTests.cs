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
        await using var observer = await MigrationCoordinator.ConnectAsync(options);
        var migrate = coordinator.MigrateAsync();
        await Eventually.TrueAsync(async () => (await observer.StatusAsync()).Phase >= MigrationPhase.Cutover, "the writable window", TimeSpan.FromMinutes(1));
        foreach (var instance in new[] { a, b })
        {
            // The window opens just after the phase is recorded; until then TARGET refuses writes and the switch with it.
            await Eventually.TrueAsync(async () => await TrySwitchAsync(instance), "the switch to TARGET");
        }

        var status = await migrate.WaitAsync(TimeSpan.FromMinutes(2));
        Assert.Equal(MigrationPhase.Promoted, status.Phase);
        // Told of the promotion, each instance reconnects to TARGET as to a primary: one more switch.
        await Eventually.TrueAsync(() => Task.FromResult(a.Controller.Generation >= 2 && b.Controller.Generation >= 2), "instances to reconnect to the promoted TARGET");
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

    private static async Task<bool> TrySwitchAsync(WebInstance instance)
    {
        try
        {
            await instance.Controller.SwitchToAsync(RedisSide.Target);
            return instance.Controller.ActiveSide == RedisSide.Target;
        }
        catch (RedisHotSwapException)
        {
            return false;
        }
    }
}
