using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

public sealed class ServerHandleTests
{
    [Fact]
    public async Task GetServer_OfEndpointsReadJustBeforeSwitches_NeverThrows()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var mux = app.Multiplexer;
        using var stop = new CancellationTokenSource();
        long pairs = 0;

        // RedLock.net's pattern before every lock: endpoints, then a server for each.
        var caller = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                foreach (var endpoint in mux.GetEndPoints())
                {
                    _ = mux.GetServer(endpoint).IsConnected;
                    pairs++;
                }
            }
        });

        for (var i = 0; i < 20; i++)
        {
            Assert.True(await app.Controller.SwitchToAsync(i % 2 == 0 ? RedisSide.Target : RedisSide.Source));
        }

        stop.Cancel();
        await caller; // rethrows what the caller met
        Assert.True(pairs > 0);
    }

    [Fact]
    public async Task Server_OfRetiredSide_IsDisconnectedAndServesItsEndpointAgainAfterSwitchBack()
    {
        await using var migration = await Migration.StartAsync();
        var settings = HotSwapApp.Settings(migration, migrationId: null);
        await using var app = HotSwapApp.Create(migration, settings: settings);
        await migration.SourceDb.StringSetAsync("only-on-source", "1");
        var endpoint = app.Multiplexer.GetEndPoints()[0];

        await app.Controller.SwitchToAsync(RedisSide.Target);
        var retired = app.Multiplexer.GetServer(endpoint);
        var source = app.Multiplexer.GetServer(migration.Source.Endpoint);

        Assert.False(retired.IsConnected);
        Assert.False(source.IsConnected);
        await Assert.ThrowsAnyAsync<Exception>(() => retired.DatabaseSizeAsync());
        Assert.Equal(0, await Assert.Single(app.Multiplexer.GetServers()).DatabaseSizeAsync());

        await app.Controller.SwitchToAsync(RedisSide.Source);

        Assert.True(retired.IsConnected);
        Assert.Equal(1, await retired.DatabaseSizeAsync());
        Assert.Equal(1, await source.DatabaseSizeAsync());
    }
}
