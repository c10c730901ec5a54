using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

public sealed class HandleFollowsSwitchTests
{
    [Fact]
    public async Task Database_ObtainedBeforeSwitch_WritesToTargetAfterIt()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var db = app.Multiplexer.GetDatabase();

        await db.StringSetAsync("before", "1");
        Assert.True(await app.Controller.SwitchToAsync(RedisSide.Target));
        await db.StringSetAsync("after", "2");
        db.StringSet("after-sync", "3");

        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        Assert.Equal("1", await migration.SourceDb.StringGetAsync("before"));
        Assert.False(await migration.TargetDb.KeyExistsAsync("before"));
        Assert.Equal("2", await migration.TargetDb.StringGetAsync("after"));
        Assert.Equal("3", await migration.TargetDb.StringGetAsync("after-sync"));
        Assert.False(await migration.SourceDb.KeyExistsAsync("after"));
        Assert.Same(app.Multiplexer, db.Multiplexer);
    }

    [Fact]
    public async Task SwitchTo_ActiveSide_ReturnsFalseAndKeepsConnection()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);

        Assert.False(await app.Controller.SwitchToAsync(RedisSide.Source));
        Assert.Equal(0, app.Controller.Generation);
    }

    [Fact]
    public async Task DistributedCache_BuiltOnSwappableMultiplexer_FollowsSwitch()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        using var cache = new RedisCache(new RedisCacheOptions
        {
            ConnectionMultiplexerFactory = () => Task.FromResult(app.Multiplexer),
            InstanceName = "app:",
        });

        await cache.SetStringAsync("greeting", "hello from source");
        Assert.Equal("hello from source", await cache.GetStringAsync("greeting"));

        await app.Controller.SwitchToAsync(RedisSide.Target);

        Assert.Null(await cache.GetStringAsync("greeting")); // TARGET is empty: the cache reads it, not SOURCE
        await cache.SetStringAsync("greeting", "hello from target");
        Assert.Equal("hello from target", await cache.GetStringAsync("greeting"));
        Assert.True(await migration.TargetDb.KeyExistsAsync("app:greeting"));
        Assert.Equal("hello from source", (string?)await migration.SourceDb.HashGetAsync("app:greeting", "data"));
    }

    [Fact]
    public async Task Subscription_MadeBeforeSwitch_ReceivesTargetMessagesAndLeavesNothingOnSource()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var subscriber = app.Multiplexer.GetSubscriber();
        var channel = RedisChannel.Literal("news");
        var received = new List<string>();
        var gotTarget = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await subscriber.SubscribeAsync(channel, (_, message) =>
        {
            lock (received)
            {
                received.Add(message!);
            }

            if (message == "from target")
            {
                gotTarget.TrySetResult();
            }
        });
        Assert.Equal(1, await migration.SubscribersAsync(migration.Source, "news"));

        await app.Controller.SwitchToAsync(RedisSide.Target);
        await migration.TargetAdmin.GetSubscriber().PublishAsync(channel, "from target");
        await gotTarget.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(0, await migration.SubscribersAsync(migration.Source, "news"));
        Assert.Equal(1, await migration.SubscribersAsync(migration.Target, "news"));
        Assert.Equal(0, await migration.SourceAdmin.GetSubscriber().PublishAsync(channel, "from source"));

        await subscriber.UnsubscribeAsync(channel);
        Assert.Equal(0, await migration.SubscribersAsync(migration.Target, "news"));
    }

    [Fact]
    public async Task Publish_AfterSwitch_GoesToTarget()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var subscriber = app.Multiplexer.GetSubscriber();
        await app.Controller.SwitchToAsync(RedisSide.Target);

        var got = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await migration.TargetAdmin.GetSubscriber().SubscribeAsync(RedisChannel.Literal("out"), (_, m) => got.TrySetResult(m!));
        await subscriber.PublishAsync(RedisChannel.Literal("out"), "hi");

        Assert.Equal("hi", await got.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Switch_AwayFromADeadSource_CompletesAndTriggersKeepWorking()
    {
        await using var migration = await Migration.StartAsync();
        var settings = HotSwapApp.Settings(migration);
        settings["RedisHotSwap:DrainTimeout"] = "00:00:01";
        await using var app = HotSwapApp.Create(migration, settings: settings);
        await app.Multiplexer.GetSubscriber().SubscribeAsync(RedisChannel.Literal("news"), (_, _) => { });

        await migration.Source.DisposeAsync(); // SOURCE dies
        var next = app.NextSwitch();
        app.SetUseTarget(true);

        Assert.Equal(RedisSide.Target, (await next).To);
        await app.Multiplexer.GetDatabase().StringSetAsync("after", "1");
        Assert.Equal("1", await migration.TargetDb.StringGetAsync("after"));
        Assert.Equal(1, await migration.SubscribersAsync(migration.Target, "news"));

        var back = app.NextSwitch(); // the trigger loop survived the failed retirement
        app.Configuration["RedisHotSwap:Target"] = migration.Target.ConfigurationString + ",name=still-listening";
        app.Configuration.Reload();
        Assert.Equal(RedisSide.Target, (await back).To);
    }

    [Fact]
    public async Task CommandsQueuedWhileSourceIsDown_AreSentOnTargetWhenTrafficMoves()
    {
        await using var migration = await Migration.StartAsync();
        var settings = HotSwapApp.Settings(migration);
        settings["RedisHotSwap:DrainTimeout"] = "00:00:01";
        await using var app = HotSwapApp.Create(migration, settings: settings);
        var db = app.Multiplexer.GetDatabase();

        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        app.Multiplexer.ConnectionFailed += (_, _) => failed.TrySetResult();
        await migration.Source.DisposeAsync(); // SOURCE dies; the client says so, and keeps new commands in its backlog
        await failed.Task.WaitAsync(TimeSpan.FromSeconds(30));
        var queued = Enumerable.Range(0, 20).Select(i => db.StringSetAsync($"queued:{i}", i)).ToArray();
        app.SetUseTarget(true);

        Assert.All(await Task.WhenAll(queued), Assert.True); // none was lost with the old connection, none surfaced an error
        Assert.Equal(19, (long)await migration.TargetDb.StringGetAsync("queued:19"));
    }
}
