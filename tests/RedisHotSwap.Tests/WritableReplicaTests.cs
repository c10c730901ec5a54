using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

public sealed class WritableReplicaTests
{
    [Fact]
    public async Task PlainClient_OnWritableReplica_RefusesWrites()
    {
        // The problem this SDK solves: StackExchange.Redis on its own will not write to a replica.
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var plain = await ConnectionMultiplexer.ConnectAsync(migration.Target.ConfigurationString);

        var ex = await Assert.ThrowsAsync<RedisConnectionException>(() => plain.GetDatabase().StringSetAsync("k", "v"));
        Assert.Contains("not eligible for replica", ex.Message);
    }

    [Fact]
    public async Task Switch_ToReplicaTarget_WritesTransactionsLuaAndPubSubWork()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var app = HotSwapApp.Create(migration);
        var db = app.Multiplexer.GetDatabase();
        var subscriber = app.Multiplexer.GetSubscriber();
        var got = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await subscriber.SubscribeAsync(RedisChannel.Literal("events"), (_, m) => got.TrySetResult(m!));

        await db.StringSetAsync("from-source", "s");
        await app.Controller.SwitchToAsync(RedisSide.Target);

        await db.StringSetAsync("plain", "p");
        var tx = db.CreateTransaction();
        tx.AddCondition(Condition.KeyNotExists("tx"));
        _ = tx.StringSetAsync("tx", "t");
        _ = tx.StringIncrementAsync("tx-counter");
        Assert.True(await tx.ExecuteAsync());
        var lua = await db.ScriptEvaluateAsync("redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])", ["lua"], ["l"]);
        await subscriber.PublishAsync(RedisChannel.Literal("events"), "on target");

        Assert.Equal("l", (string?)lua);
        Assert.Equal("on target", await got.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal("p", await migration.TargetDb.StringGetAsync("plain"));
        Assert.Equal("t", await migration.TargetDb.StringGetAsync("tx"));
        Assert.Equal(1, (long)await migration.TargetDb.StringGetAsync("tx-counter"));
        await migration.ReplicatedAsync();
        Assert.Equal("s", await migration.TargetDb.StringGetAsync("from-source")); // SOURCE's writes still reach TARGET
        Assert.False(await migration.SourceDb.KeyExistsAsync("plain")); // written to TARGET, not SOURCE
    }

    [Fact]
    public async Task Switch_ToAWritableReplicaThatLags_HoldsCommandsUntilItHasWhatThisInstanceWroteOnSource()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var app = HotSwapApp.Create(migration);
        var db = app.Multiplexer.GetDatabase();
        await db.StringSetAsync("k", "old");
        await migration.ReplicatedAsync();

        // TARGET's link to SOURCE drops and stays down (TARGET cannot authenticate) until the test lets it back:
        // TARGET lacks what the instance writes on SOURCE now.
        var target = migration.TargetAdmin.GetServer(migration.Target.Endpoint);
        await target.ConfigSetAsync("masterauth", "not-the-password");
        await migration.TargetDb.ExecuteAsync("CLIENT", "KILL", "TYPE", "master");
        await db.StringSetAsync("k", "source");
        await db.StringIncrementAsync("n");
        var switching = app.Controller.SwitchToAsync(RedisSide.Target);
        await Eventually.TrueAsync(() => Task.FromResult(app.Controller.ActiveSide == RedisSide.Target), "traffic to move to TARGET");

        // Sent to TARGET as soon as traffic moved: held until TARGET, its link back (a partial resync), has SOURCE's
        // stream up to the instance's last write there.
        var read = db.StringGetAsync("k");
        var counted = db.StringIncrementAsync("n");
        await target.ConfigSetAsync("masterauth", migration.Source.Password);
        Assert.Equal("source", await read);
        Assert.Equal(2, await counted);
        Assert.Contains("master_link_status:up", await migration.InfoAsync(migration.Target, "replication"));
        await switching;

        // The instance's newer write on TARGET stays: SOURCE's older one arrived before it.
        await db.StringSetAsync("k", "target");
        await migration.ReplicatedAsync();
        Assert.Equal("target", await migration.TargetDb.StringGetAsync("k"));
    }

    [Fact]
    public async Task Switch_ToAWritableReplicaThatLags_ReleasesTheHeldCommandsInTheOrderTheyWereSent()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var app = HotSwapApp.Create(migration);
        var db = app.Multiplexer.GetDatabase();
        var target = await LinkDownAsync(migration);
        await db.StringSetAsync("k", "source");
        var switching = app.Controller.SwitchToAsync(RedisSide.Target);
        await Eventually.TrueAsync(() => Task.FromResult(app.Controller.ActiveSide == RedisSide.Target), "traffic to move to TARGET");

        // A pipeline of 300 commands, all held: released, they must be sent as they were issued.
        var sends = Enumerable.Range(0, 300).Select(i => db.ListRightPushAsync("sequence", i)).ToArray();
        await target.ConfigSetAsync("masterauth", migration.Source.Password);
        await Task.WhenAll(sends);
        await switching;

        Assert.Equal(Enumerable.Range(0, 300), (await db.ListRangeAsync("sequence")).Select(v => (int)v));
    }

    [Fact]
    public async Task Switch_ToAWritableReplicaThatLags_OrdersForAnApplicationUserWithoutAdminCommands()
    {
        // An application user without ROLE (an @admin command many application ACLs deny).
        await using var migration = await Migration.StartAsync(replicate: true);
        foreach (var admin in new[] { migration.SourceAdmin.GetServer(migration.Source.Endpoint), migration.TargetAdmin.GetServer(migration.Target.Endpoint) })
        {
            await admin.ExecuteAsync("ACL", "SETUSER", "app", "on", ">app-password", "~*", "&*", "+@all", "-role");
        }

        var settings = HotSwapApp.Settings(migration);
        settings["RedisHotSwap:Source"] = migration.Source.ConfigurationString.Replace($"password={migration.Source.Password}", "user=app,password=app-password", StringComparison.Ordinal);
        settings["RedisHotSwap:Target"] = migration.Target.ConfigurationString.Replace($"password={migration.Target.Password}", "user=app,password=app-password", StringComparison.Ordinal);
        await using var app = HotSwapApp.Create(migration, settings: settings);
        var db = app.Multiplexer.GetDatabase();
        var target = await LinkDownAsync(migration);
        await db.StringSetAsync("k", "source");
        var switching = app.Controller.SwitchToAsync(RedisSide.Target);
        await Eventually.TrueAsync(() => Task.FromResult(app.Controller.ActiveSide == RedisSide.Target), "traffic to move to TARGET");

        var read = db.StringGetAsync("k");
        await target.ConfigSetAsync("masterauth", migration.Source.Password);
        Assert.Equal("source", await read);
        await switching;
        Assert.DoesNotContain(app.Logs.GetSnapshot(), r => r.Message.Contains("without knowing", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Switch_ToAWritableReplica_ACommandBlockedOnSourceHoldsTargetsTrafficOnlyBriefly()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        var settings = HotSwapApp.Settings(migration);
        settings["RedisHotSwap:Source"] += ",syncTimeout=60000,asyncTimeout=60000"; // the BLPOP never times out on its own
        settings["RedisHotSwap:DrainTimeout"] = "00:01:00";
        await using var app = HotSwapApp.Create(migration, settings: settings);
        var db = app.Multiplexer.GetDatabase();
        await db.StringSetAsync("k", "v");
        var blocked = db.ExecuteAsync("BLPOP", "queue", "0");
        await Eventually.TrueAsync(async () => (await migration.InfoAsync(migration.Source, "clients")).Contains("blocked_clients:1", StringComparison.Ordinal), "the BLPOP to block");
        var switching = app.Controller.SwitchToAsync(RedisSide.Target);
        await Eventually.TrueAsync(() => Task.FromResult(app.Controller.ActiveSide == RedisSide.Target), "traffic to move to TARGET");

        // The ordering gives up on the connection blocked behind BLPOP (with a warning) instead of holding TARGET's
        // commands for the drain's minute.
        Assert.Equal("v", await db.StringGetAsync("k").WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(app.Logs.GetSnapshot(), r => r.Message.Contains("a blocking command?", StringComparison.Ordinal));
        await migration.SourceDb.ListLeftPushAsync("queue", "x");
        await blocked;
        await switching;
    }

    // TARGET's replication link drops and stays down (TARGET cannot authenticate) until the test puts masterauth back.
    private static async Task<IServer> LinkDownAsync(Migration migration)
    {
        await migration.ReplicatedAsync();
        var target = migration.TargetAdmin.GetServer(migration.Target.Endpoint);
        await target.ConfigSetAsync("masterauth", "not-the-password");
        await migration.TargetDb.ExecuteAsync("CLIENT", "KILL", "TYPE", "master");
        return target;
    }

    [Fact]
    public async Task Switch_ToReadOnlyReplica_IsRefusedAndTriedAgainUntilItOpens()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        var target = migration.TargetAdmin.GetServer(migration.Target.Endpoint);
        await target.ConfigSetAsync("replica-read-only", "yes");
        var settings = HotSwapApp.Settings(migration);
        settings["RedisHotSwap:RetryInterval"] = "00:00:00.100";
        await using var app = HotSwapApp.Create(migration, settings: settings);

        var refused = await Assert.ThrowsAsync<RedisHotSwapException>(() => app.Controller.SwitchToAsync(RedisSide.Target));
        Assert.Contains("read-only replica", refused.Message);
        Assert.DoesNotContain(migration.Target.Password, refused.Message);

        var next = app.NextSwitch();
        app.SetUseTarget(true);
        await Eventually.TrueAsync(
            () => Task.FromResult(app.Logs.GetSnapshot().Any(r => r.Message.StartsWith("Could not switch Redis traffic to Target", StringComparison.Ordinal))),
            "the configured switch to be refused");
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
        await app.Multiplexer.GetDatabase().StringSetAsync("still-writable", "1"); // on SOURCE

        await target.ConfigSetAsync("replica-read-only", "no");

        Assert.Equal(RedisSide.Target, (await next).To);
        await app.Multiplexer.GetDatabase().StringSetAsync("on-target", "1");
        Assert.True(await migration.TargetDb.KeyExistsAsync("on-target"));
    }
}
