using Microsoft.Extensions.Configuration;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

/// <summary>Sides given as a Sentinel service or as a Redis Cluster, switched under load.</summary>
public sealed class SentinelAndClusterTests
{
    [Fact]
    public async Task SwitchBetweenSentinelSides_UnderLoad_SurfacesNoErrorAndMovesHandlesAndPubSub()
    {
        await using var sourcePrimary = await RedisServerProcess.StartAsync();
        await using var sourceSentinel = await RedisServerProcess.StartSentinelAsync(sourcePrimary);
        await using var targetPrimary = await RedisServerProcess.StartAsync();
        await using var targetSentinel = await RedisServerProcess.StartSentinelAsync(targetPrimary);

        await SwitchUnderLoadAsync(sourceSentinel.ConfigurationString, targetSentinel.ConfigurationString, sourcePrimary.ConfigurationString, targetPrimary.ConfigurationString);
    }

    [Fact]
    public async Task SwitchBetweenClusters_UnderLoad_SurfacesNoErrorAndMovesHandlesAndPubSub()
    {
        await using var source = await RedisCluster.StartAsync();
        await using var target = await RedisCluster.StartAsync();

        await SwitchUnderLoadAsync(source.ConfigurationString, target.ConfigurationString, source.ConfigurationString, target.ConfigurationString);
    }

    // Switches to TARGET and back under load; every acknowledged write is on the side that acknowledged it, and the
    // application's subscriptions (a handler and a queue) hear the active side.
    private static async Task SwitchUnderLoadAsync(string source, string target, string sourceAdmin, string targetAdmin)
    {
        await using var sourceCheck = await ConnectionMultiplexer.ConnectAsync(sourceAdmin);
        await using var targetCheck = await ConnectionMultiplexer.ConnectAsync(targetAdmin);
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RedisHotSwap:Source"] = source,
            ["RedisHotSwap:Target"] = target,
        }).Build();
        await using var app = HotSwapApp.Create(configuration);
        var channel = RedisChannel.Literal("side-news");
        var heard = new System.Collections.Concurrent.ConcurrentQueue<string>();
        await app.Multiplexer.GetSubscriber().SubscribeAsync(channel, (_, m) => heard.Enqueue(m!));
        var queue = await app.Multiplexer.GetSubscriber().SubscribeAsync(channel);
        await using var load = new WriteLoad(app.Multiplexer.GetDatabase(), "w", writers: 8, readers: 2);

        await load.MoreAsync(2_000);
        Assert.True(await app.Controller.SwitchToAsync(RedisSide.Target));
        await load.MoreAsync(2_000);
        await targetCheck.GetSubscriber().PublishAsync(channel, "on target");
        Assert.Equal("on target", (string?)(await queue.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10))).Message);
        Assert.True(await app.Controller.SwitchToAsync(RedisSide.Source));
        await load.MoreAsync(2_000);
        await load.StopAsync();

        Assert.Empty(load.Errors);
        await Eventually.TrueAsync(() => Task.FromResult(heard.Contains("on target")), "the handler to hear TARGET");
        var writes = load.Acknowledged;
        var notOnSource = await WriteLoad.MissingOnAsync(sourceCheck.GetDatabase(), writes);
        Assert.NotEmpty(notOnSource); // traffic really reached TARGET
        Assert.Empty(await WriteLoad.MissingOnAsync(targetCheck.GetDatabase(), notOnSource));
    }
}
