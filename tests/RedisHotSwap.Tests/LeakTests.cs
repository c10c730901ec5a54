using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests;

public sealed class LeakTests
{
    [Fact]
    public async Task HundredSwitches_LeaveConnectedClientsAtBaseline()
    {
        await using var migration = await Migration.StartAsync();
        var targetBaseline = await migration.ConnectedClientsAsync(migration.Target);
        await using var app = HotSwapApp.Create(migration);
        await app.Multiplexer.GetSubscriber().SubscribeAsync(StackExchange.Redis.RedisChannel.Literal("c"), (_, _) => { });
        var sourceWithApp = await migration.ConnectedClientsAsync(migration.Source);

        for (var i = 0; i < 100; i++)
        {
            Assert.True(await app.Controller.SwitchToAsync(i % 2 == 0 ? RedisSide.Target : RedisSide.Source));
        }

        Assert.Equal(100, app.Controller.Generation);
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
        await Eventually.TrueAsync(async () => await migration.ConnectedClientsAsync(migration.Target) == targetBaseline, "TARGET's connected_clients to return to its baseline");
        await Eventually.TrueAsync(async () => await migration.ConnectedClientsAsync(migration.Source) == sourceWithApp, "SOURCE's connected_clients to return to the app's own");
        Assert.Equal(0, await migration.SubscribersAsync(migration.Target, "c"));
        Assert.Equal(1, await migration.SubscribersAsync(migration.Source, "c"));
    }

    [Fact]
    public async Task Dispose_ClosesTheActiveConnection()
    {
        await using var migration = await Migration.StartAsync();
        var baseline = await migration.ConnectedClientsAsync(migration.Target);
        var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, useTarget: true));
        Assert.True(await migration.ConnectedClientsAsync(migration.Target) > baseline);

        await app.DisposeAsync();

        await Eventually.TrueAsync(async () => await migration.ConnectedClientsAsync(migration.Target) == baseline, "TARGET's connected_clients to return to its baseline");
    }
}
