using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests;

public sealed class LoadTests
{
    [Fact]
    public async Task SwitchAndBack_UnderFullLoad_SurfacesNoErrorAndKeepsEveryAcknowledgedWrite()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        await using var load = new WriteLoad(app.Multiplexer.GetDatabase(), "w", writers: 24, readers: 8);

        await load.MoreAsync(5_000);
        await app.Controller.SwitchToAsync(RedisSide.Target);
        await load.MoreAsync(5_000);
        await app.Controller.SwitchToAsync(RedisSide.Source);
        await load.MoreAsync(5_000);
        await load.StopAsync();

        Assert.Empty(load.Errors);
        Assert.Equal(2, app.Controller.Generation);

        // The servers are independent, so each acknowledged key lives on exactly the server that acknowledged it.
        var writes = load.Acknowledged;
        var notOnSource = await WriteLoad.MissingOnAsync(migration.SourceDb, writes);
        var onNeither = await WriteLoad.MissingOnAsync(migration.TargetDb, notOnSource);
        Assert.Empty(onNeither);
        Assert.NotEmpty(notOnSource); // traffic really reached TARGET
        Assert.True(writes.Length > 10_000, $"only {writes.Length} writes were acknowledged");
    }
}
