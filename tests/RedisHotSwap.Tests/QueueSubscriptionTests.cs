using RedisHotSwap.Connection;
using RedisHotSwap.Protocol;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

public sealed class QueueSubscriptionTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task QueueSubscription_MadeBeforeSwitches_DeliversFromEachActiveSide()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var channel = RedisChannel.Literal("queue-news");
        var queue = await app.Multiplexer.GetSubscriber().SubscribeAsync(channel);

        await migration.SourceDb.PublishAsync(channel, "source 0");
        Assert.Equal("source 0", (string?)(await queue.ReadAsync().AsTask().WaitAsync(Wait)).Message);

        for (var i = 1; i <= 3; i++)
        {
            var side = i % 2 == 1 ? RedisSide.Target : RedisSide.Source;
            Assert.True(await app.Controller.SwitchToAsync(side));
            var admin = side == RedisSide.Target ? migration.TargetDb : migration.SourceDb;
            Assert.Equal(1, await admin.PublishAsync(channel, $"{side} {i}"));
            Assert.Equal($"{side} {i}", (string?)(await queue.ReadAsync().AsTask().WaitAsync(Wait)).Message);
        }

        Assert.Equal(0, await migration.SourceDb.PublishAsync(channel, "nobody listens on the retired side"));
        Assert.False(queue.Completion.IsCompleted);
    }

    [Fact]
    public async Task QueueSubscription_UnsubscribedThroughSubscriber_LeavesServerAndCompletes()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var subscriber = app.Multiplexer.GetSubscriber();
        var channel = RedisChannel.Literal("queue-gone");
        var queue = await subscriber.SubscribeAsync(channel);

        await subscriber.UnsubscribeAsync(channel);

        await queue.Completion.WaitAsync(Wait);
        Assert.Equal(0, await migration.SourceDb.PublishAsync(channel, "after unsubscribe"));
    }

    [Fact]
    public async Task QueueSubscription_UnsubscribedThroughQueueAfterSwitch_LeavesServerAtOnceAndCompletesWhenRead()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var channel = RedisChannel.Literal("queue-own-unsubscribe");
        var queue = await app.Multiplexer.GetSubscriber().SubscribeAsync(channel);
        await app.Controller.SwitchToAsync(RedisSide.Target);
        Assert.Equal(1, await migration.TargetDb.PublishAsync(channel, "unread"));
        await Eventually.TrueAsync(() => Task.FromResult(queue.TryGetCount(out var count) && count == 1), "the message to reach the queue");

        await queue.UnsubscribeAsync();

        // The server subscription goes although a message is still unread; the queue completes once it is read.
        await Eventually.TrueAsync(async () => await migration.TargetDb.PublishAsync(channel, "probe") == 0, "TARGET to drop the queue's subscription");
        Assert.Equal("unread", (string?)(await queue.ReadAsync().AsTask().WaitAsync(Wait)).Message);
        await queue.Completion.WaitAsync(Wait);
    }

    [Fact]
    public async Task Subscribe_ChannelTheServerRefuses_IsNotKeptAndLaterSwitchesSucceed()
    {
        await using var migration = await Migration.StartAsync();
        foreach (var admin in new[] { migration.SourceDb, migration.TargetDb })
        {
            await admin.ExecuteAsync("ACL", "SETUSER", "app", "on", ">app-secret", "~*", "resetchannels", "&allowed*", "+@all");
        }

        var settings = HotSwapApp.Settings(migration, migrationId: null);
        settings["RedisHotSwap:Source"] = $"{migration.Source.Endpoint},user=app,password=app-secret";
        settings["RedisHotSwap:Target"] = $"{migration.Target.Endpoint},user=app,password=app-secret";
        await using var app = HotSwapApp.Create(migration, settings: settings);
        var subscriber = app.Multiplexer.GetSubscriber();
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await subscriber.SubscribeAsync(RedisChannel.Literal("allowed-news"), (_, m) => received.TrySetResult(m!));

        await Assert.ThrowsAnyAsync<RedisException>(() => subscriber.SubscribeAsync(RedisChannel.Literal("forbidden"), (_, _) => { }));

        var multiplexer = (HotSwapConnectionMultiplexer)app.Multiplexer;
        Assert.Equal([RedisChannel.Literal("allowed-news")], multiplexer.Subscriptions.Channels);
        Assert.True(await app.Controller.SwitchToAsync(RedisSide.Target));
        await migration.TargetDb.PublishAsync(RedisChannel.Literal("allowed-news"), "still here");
        Assert.Equal("still here", await received.Task.WaitAsync(Wait));
    }

    [Fact]
    public async Task UnsubscribeAll_FromApplication_KeepsDirectiveChannelAndEmptiesRegistry()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration); // MigrationId "test": the SDK listens for directives
        var subscriber = app.Multiplexer.GetSubscriber();
        var directive = MigrationKeys.DirectiveChannel("test");
        var multiplexer = (HotSwapConnectionMultiplexer)app.Multiplexer;
        await Eventually.TrueAsync(() => Task.FromResult(multiplexer.Subscriptions.Contains(directive)), "the directive subscription");
        for (var i = 0; i < 50; i++)
        {
            var channel = RedisChannel.Literal($"short-lived-{i}");
            await subscriber.SubscribeAsync(channel, (_, _) => { });
            await subscriber.UnsubscribeAsync(channel);
        }

        await subscriber.SubscribeAsync(RedisChannel.Literal("app-channel"), (_, _) => { });
        var queue = await subscriber.SubscribeAsync(RedisChannel.Literal("app-queue"));
        await subscriber.UnsubscribeAllAsync();

        Assert.Equal([directive], multiplexer.Subscriptions.Channels);
        await queue.Completion.WaitAsync(Wait);
        Assert.Equal(1, await migration.SourceDb.PublishAsync(directive, "{}"));
        Assert.Equal(0, await migration.SourceDb.PublishAsync(RedisChannel.Literal("app-channel"), "gone"));
    }

    [Fact]
    public async Task Multiplexer_OfEveryHandle_IsTheSwappableOne_BeforeAndAfterSwitch()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var mux = app.Multiplexer;

        foreach (var side in new[] { RedisSide.Source, RedisSide.Target })
        {
            await app.Controller.SwitchToAsync(side);
            Assert.Same(mux, mux.GetDatabase().Multiplexer);
            Assert.Same(mux, mux.GetDatabase(3, asyncState: "state").Multiplexer);
            Assert.Same(mux, mux.GetSubscriber().Multiplexer);
            Assert.Same(mux, mux.GetSubscriber("state").Multiplexer);
            Assert.Same(mux, mux.GetServer(mux.GetEndPoints()[0]).Multiplexer);
            Assert.Same(mux, Assert.Single(mux.GetServers()).Multiplexer);
            Assert.Same(mux, mux.GetServer(migration.Source.Endpoint).Multiplexer);
        }
    }
}
