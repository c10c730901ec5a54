using RedisHotSwap.Connection;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Protocol;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class HandoffSafetyTests
{
    [Fact]
    public async Task ControlMessages_ForgedGarbledOrReplayed_NeverSteerAnInstance()
    {
        const string id = "forged";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        var channel = MigrationKeys.DirectiveChannel(id);
        var forgedPromotion = new Directive(RedisSide.Target, "forged", DateTimeOffset.UtcNow, Promoted: true, MigrationId: id, Epoch: 999).ToJson();

        await Eventually.TrueAsync(async () => await migration.SubscribersAsync(migration.Source, channel.ToString()) > 0, "the instance to listen on the control channel");

        // Before any migration: messages alone (garbage, unknown side and version, another migration, even a well-formed
        // promotion) only wake the instance, which finds no directive on the server.
        foreach (var message in new[] { "x", """{"side":7,"version":99}""", new Directive(RedisSide.Target, "other", DateTimeOffset.UtcNow, MigrationId: "other", Epoch: 5).ToJson(), forgedPromotion })
        {
            await migration.SourceDb.PublishAsync(channel, message);
        }

        await migration.SourceDb.StringSetAsync(MigrationKeys.Directive(id), """{"side":"Target","version":2,"migrationId":"forged","epoch":0}""");
        await WaitForLogAsync(app, "it has no epoch"); // read after every message above was handled
        Assert.Contains(app.Logs.GetSnapshot(), r => r.Message.Contains("names another migration", StringComparison.Ordinal));
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
        Assert.Equal(0, app.Controller.Generation);
        await migration.SourceDb.KeyDeleteAsync(MigrationKeys.Directive(id));

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1");
        Assert.True(exit == 0, output);
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        var generation = app.Controller.Generation;

        // After it: a forged message back to SOURCE, a replayed older directive in the key, then garbage in the key.
        await migration.TargetDb.PublishAsync(channel, new Directive(RedisSide.Source, "forged", DateTimeOffset.UtcNow, MigrationId: id, Epoch: 1).ToJson());
        var standing = (string?)await migration.TargetDb.StringGetAsync(MigrationKeys.Directive(id));
        await migration.TargetDb.StringSetAsync(MigrationKeys.Directive(id), new Directive(RedisSide.Source, "replayed", DateTimeOffset.UtcNow, MigrationId: id, Epoch: 1).ToJson());
        await WaitForLogAsync(app, "epoch 1 is older than the standing directive's");
        await migration.TargetDb.StringSetAsync(MigrationKeys.Directive(id), "garbage");
        await WaitForLogAsync(app, "it is not a directive");
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        Assert.Equal(generation, app.Controller.Generation);

        // An instance that starts now reads the standing directive before its first command, whatever its configuration says.
        await migration.TargetDb.StringSetAsync(MigrationKeys.Directive(id), standing);
        await using var late = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        Assert.Equal(RedisSide.Target, late.Controller.ActiveSide);
        await late.Multiplexer.GetDatabase().StringSetAsync("late", "1"); // SOURCE is a replica now: this would fail there
    }

    [Fact]
    public async Task Handoff_AnInstanceThatCannotArm_PromotesNothingAndSaysWhom()
    {
        const string id = "unarmed";
        await using var migration = await Migration.StartAsync();
        await using var good = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        var unreachable = HotSwapApp.Settings(migration, migrationId: id);
        unreachable["RedisHotSwap:Target"] = "127.0.0.1:1,connectTimeout=200";
        await using var cut = HotSwapApp.Create(migration, settings: unreachable);
        await using var load = new WriteLoad(good.Multiplexer.GetDatabase(), "unarmed", writers: 4);

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "2", "--instances-timeout", "00:00:03");

        Assert.Equal(1, exit);
        Assert.Contains("not armed for TARGET", output);
        Assert.Contains("Nothing was promoted", output);
        await load.MoreAsync(500); // writes go on, on SOURCE
        await load.StopAsync();
        Assert.Contains("role:master", await migration.InfoAsync(migration.Source, "replication"));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal(RedisSide.Source, good.Controller.ActiveSide);
        Assert.Equal(RedisSide.Source, cut.Controller.ActiveSide);
        Assert.Empty(load.Errors);
    }

    [Fact]
    public async Task Handoff_TargetThatCannotCatchUpWithinThePause_PromotesNothingAndPutsEverythingBack()
    {
        const string id = "lagging";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new WriteLoad(app.Multiplexer.GetDatabase(), "lagging", writers: 4);

        // TARGET freezes the moment SOURCE's writes are held: it cannot take the last of the stream in time.
        var frozen = 0;
        await using (var coordinator = await OnThePauseAsync(migration, id, TimeSpan.FromMilliseconds(40), () =>
        {
            frozen++;
            migration.Target.SuspendAsync().GetAwaiter().GetResult();
        }))
        {
            try
            {
                var halted = await Assert.ThrowsAsync<RedisHotSwap.Coordinator.MigrationHaltedException>(() => coordinator.MigrateAsync());
                Assert.Contains("Nothing was promoted", halted.StateLeft);
            }
            finally
            {
                await migration.Target.ResumeAsync();
            }
        }

        Assert.Equal(1, frozen);
        await PutBackAsync(migration, app, load);

        // Once TARGET keeps up, the same command hands off.
        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1");
        Assert.True(exit == 0, output);
        await load.StopAsync();
        Assert.Empty(load.Errors);
        Assert.Empty(await WriteLoad.MissingOnAsync(migration.TargetDb, load.Acknowledged));
    }

    // TARGET freezes the moment SOURCE is sealed: REPLICAOF NO ONE meets a server that answers nothing, for longer than
    // the lease's validity. Every step behind the fence is bounded by --max-pause, so the coordinator ends the fenced
    // part while the lease is still its own: the promotion's outcome unknown, the seal stays (SOURCE takes no write
    // TARGET may lack), the pause is lifted, and the halt says to run the same command again, which finishes.
    [Fact]
    public async Task Handoff_WhoseTargetStallsAtThePromotionPastTheLease_KeepsTheSealLiftsThePauseAndFinishesWhenRunAgain()
    {
        const string id = "stalled-promotion";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        var source = migration.SourceAdmin.GetServer(migration.Source.Endpoint);
        await app.Multiplexer.GetDatabase().StringSetAsync("before", "1");

        var frozen = 0;
        RedisHotSwap.Coordinator.MigrationHaltedException halted;
        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o =>
        {
            o.ExpectedInstances = 1;
            o.MaxPause = TimeSpan.FromSeconds(2);
            o.Audit = line =>
            {
                if (line.Contains("(seal:", StringComparison.Ordinal) && Interlocked.Exchange(ref frozen, 1) == 0)
                {
                    migration.Target.SuspendAsync().GetAwaiter().GetResult(); // before REPLICAOF NO ONE is sent
                }
            };
        }))
        {
            try
            {
                halted = await Assert.ThrowsAsync<RedisHotSwap.Coordinator.MigrationHaltedException>(() => coordinator.MigrateAsync());

                // The fenced part ended in time: its own halt, not a lost lease's.
                Assert.Contains("TARGET was promoted, but SOURCE could not be made its replica", halted.Problem);
                Assert.Contains("did not answer REPLICAOF NO ONE within --max-pause", halted.Problem);
                Assert.DoesNotContain("lost the lease", halted.Message);
                Assert.Contains("SOURCE is sealed", halted.StateLeft);
                Assert.Contains("run the same command again", halted.HowToContinue, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain("'abort'", halted.HowToContinue);

                // The seal stays (the promotion may have happened), and the pause is lifted: a write is refused at once.
                Assert.NotEqual("0", (await source.ConfigGetAsync("min-replicas-to-write"))[0].Value);
                await using var probe = await PauseProbe.SendAsync(migration.Source);
                await probe.Published;
                var refused = await Assert.ThrowsAsync<RedisServerException>(() => migration.SourceDb.StringSetAsync("sealed", "1"));
                Assert.StartsWith("NOREPLICAS", refused.Message);
            }
            finally
            {
                await migration.Target.ResumeAsync();
            }
        }

        Assert.Equal(1, frozen);
        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1");
        Assert.True(exit == 0, output);
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Source, "replication"));
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        await app.Multiplexer.GetDatabase().StringSetAsync("after", "1"); // writes go on, on TARGET
        Assert.Equal("1", (string?)await migration.TargetDb.StringGetAsync("before"));
        Assert.Equal("1", (string?)await migration.TargetDb.StringGetAsync("after"));
    }

    // The seal requires one replica more than SOURCE had when the handoff began; a replica that connects meanwhile makes
    // up the count, and the seal would not bite should the pause lapse. It is read back as it takes effect: then
    // nothing is promoted.
    [Fact]
    public async Task Handoff_AReplicaConnectingDuringThePause_SealReadBackPromotesNothingAndPutsEverythingBack()
    {
        const string id = "unsealed";
        await using var migration = await Migration.StartAsync();
        await using var extra = await RedisServerProcess.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new WriteLoad(app.Multiplexer.GetDatabase(), "unsealed", writers: 4);
        await using var extraAdmin = await ConnectionMultiplexer.ConnectAsync(extra.ConfigurationString + ",allowAdmin=true");
        await extraAdmin.GetDatabase().ExecuteAsync("CONFIG", "SET", "masterauth", migration.Source.Password);

        // While SOURCE's writes are held, a second replica connects and comes online.
        var joined = 0;
        await using (var coordinator = await OnThePauseAsync(migration, id, TimeSpan.FromSeconds(20), () =>
        {
            joined++;
            extraAdmin.GetDatabase().Execute("REPLICAOF", "127.0.0.1", migration.Source.Port);
            Eventually.TrueAsync(async () => (await migration.InfoAsync(migration.Source, "replication")).Split('\n').Count(l => l.StartsWith("slave", StringComparison.Ordinal) && l.Contains("state=online", StringComparison.Ordinal)) == 2,
                "the second replica to come online").GetAwaiter().GetResult();
        }))
        {
            var halted = await Assert.ThrowsAsync<RedisHotSwap.Coordinator.MigrationHaltedException>(() => coordinator.MigrateAsync());
            Assert.Contains("seal does not bite", halted.Message);
            Assert.Contains("Nothing was promoted", halted.StateLeft);
        }

        Assert.Equal(1, joined);
        await PutBackAsync(migration, app, load);
        await load.StopAsync();
        Assert.Empty(load.Errors);
        Assert.Empty(await WriteLoad.MissingOnAsync(migration.SourceDb, load.Acknowledged));
    }

    // A stalls behind its fence past its lease; B takes the lease over, lifts A's pause (as a resumed run does) and puts
    // its own pause and seal on SOURCE, on its way to promote. A wakes: its undo must not lift B's fence, or SOURCE would
    // take writes TARGET may never get.
    [Fact]
    public async Task Handoff_WhoseLeaseWasTakenOverBehindTheFence_LeavesTheNewHoldersSealAndPause()
    {
        const string id = "overtaken";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        var source = migration.SourceAdmin.GetServer(migration.Source.Endpoint);
        var clock = new StallingTimeProvider();

        var overtaken = 0;
        RedisHotSwap.Coordinator.MigrationHaltedException halted;
        await using (var coordinator = await OnThePauseAsync(migration, id, TimeSpan.FromSeconds(20), () =>
        {
            overtaken++;
            Takeover.BehindTheFence(migration, id, clock, fence: "2"); // B's seal: one replica more than SOURCE has
        }, clock))
        {
            halted = await Assert.ThrowsAsync<RedisHotSwap.Coordinator.MigrationHaltedException>(() => coordinator.MigrateAsync());
        }

        await using var probe = await PauseProbe.SendAsync(migration.Source);
        try
        {
            Assert.Equal(1, overtaken);
            Assert.Equal("2", (await source.ConfigGetAsync("min-replicas-to-write"))[0].Value); // B's seal stands
            await probe.HeldAsync(source); // and its pause
            Assert.Equal(Takeover.OtherHolder, await migration.TargetDb.StringGetAsync(MigrationKeys.Lease(id))); // and its lease (replicated)
            Assert.Contains("lost the lease", halted.Problem);
            Assert.Contains("It left SOURCE's min-replicas-to-write as it was", halted.StateLeft);
            Assert.Contains("run the same command again", halted.HowToContinue);
        }
        finally
        {
            await source.ExecuteAsync("CLIENT", "UNPAUSE");
        }

        await probe.Published;
        var refused = await Assert.ThrowsAsync<RedisServerException>(() => migration.SourceDb.StringSetAsync("after-takeover", "1"));
        Assert.StartsWith("NOREPLICAS", refused.Message);
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
    }

    // A coordinator for one instance, writes held for at most maxPause; onPause runs once, as the first pause takes effect.
    private static Task<MigrationCoordinator> OnThePauseAsync(Migration migration, string id, TimeSpan maxPause, Action onPause, TimeProvider? time = null)
    {
        var paused = 0;
        return CoordinatorCli.ObserverAsync(migration, id, o =>
        {
            o.ExpectedInstances = 1;
            o.MaxPause = maxPause;
            o.Audit = line =>
            {
                if (line.Contains("CLIENT PAUSE", StringComparison.Ordinal) && Interlocked.Exchange(ref paused, 1) == 0)
                {
                    onPause();
                }
            };
        }, time);
    }

    // Called off: the instance is disarmed, so that writes that met the seal go on at once (not after DrainTimeout).
    // A handoff that promoted nothing put everything back: SOURCE the primary and TARGET its replica, the fence undone,
    // the instance disarmed, and the pause lifted: writes go on, on SOURCE.
    private static async Task PutBackAsync(Migration migration, HotSwapApp app, WriteLoad load)
    {
        Assert.Contains("role:master", await migration.InfoAsync(migration.Source, "replication"));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal("0", (await migration.SourceAdmin.GetServers()[0].ConfigGetAsync("min-replicas-to-write"))[0].Value);
        await DisarmedAsync(app);
        await load.MoreAsync(500);
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
    }

    private static async Task DisarmedAsync(HotSwapApp app)
    {
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(((HotSwapConnectionMultiplexer)app.Multiplexer).ArmedSide is null), "the instance to be disarmed");
        }
        catch (TimeoutException)
        {
            throw new InvalidOperationException(string.Join("\n", app.Logs.GetSnapshot().Select(r => $"{r.Timestamp:HH:mm:ss.fff} {r.Level} {r.Message}")));
        }
    }

    [Fact]
    public async Task Finish_AfterAHandoff_EndsItOnThePrimaryAndKeepsInstancesThere()
    {
        const string id = "finished";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new WriteLoad(app.Multiplexer.GetDatabase(), "finished", writers: 4);
        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1");
        Assert.True(exit == 0, output);

        (exit, output) = await CoordinatorCli.RunAsync(migration, id, "finish");

        Assert.True(exit == 0, output);
        Assert.Contains("finished on TARGET", output);
        var source = await migration.InfoAsync(migration.Source, "replication");
        Assert.Contains("role:master", source); // it stopped replicating...
        var refused = await Assert.ThrowsAsync<RedisServerException>(() => migration.SourceDb.StringSetAsync("stray", "1"));
        Assert.StartsWith("NOREPLICAS", refused.Message); // ...and refuses writes: nothing written there is lost unseen
        Assert.True((await migration.TargetDb.KeyTimeToLiveAsync(MigrationKeys.Directive(id))) > TimeSpan.FromDays(6));
        await load.MoreAsync(500);
        await load.StopAsync();
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        Assert.Empty(load.Errors);
        Assert.Empty(await WriteLoad.MissingOnAsync(migration.TargetDb, load.Acknowledged));
        (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate");
        Assert.True(exit == 2, output); // a finished migration does not start again
    }

    [Fact]
    public async Task MigratingBack_AfterAFinishedMigrationAndARewrittenConfiguration_SurfacesNothing()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: "forth"));
        await using var load = new WriteLoad(app.Multiplexer.GetDatabase(), "back", writers: 4);
        var (exit, output) = await CoordinatorCli.RunAsync(migration, "forth", "migrate", "--expect-instances", "1");
        Assert.True(exit == 0, output);
        (exit, output) = await CoordinatorCli.RunAsync(migration, "forth", "finish");
        Assert.True(exit == 0, output);

        // A later deploy names the new server as SOURCE, the old one as TARGET, and a new migration: the directive of
        // 'forth' (use TARGET) must not send the instance to the old server; the rewritten MigrationId is logged.
        var moved = app.NextSwitch();
        app.Configuration["RedisHotSwap:Source"] = migration.Target.ConfigurationString;
        app.Configuration["RedisHotSwap:Target"] = migration.Source.ConfigurationString;
        app.Configuration["RedisHotSwap:MigrationId"] = "back";
        app.Configuration.Reload();
        Assert.Equal(RedisSide.Source, (await moved).To); // the same server as before, now called SOURCE
        await WaitForLogAsync(app, "MigrationId changed from forth to back");
        await load.MoreAsync(500);

        // And back: a handoff from the new server to the old one, under the same load; the instance takes part in 'back'.
        await using var coordinator = await MigrationCoordinator.ConnectAsync(new CoordinatorOptions
        {
            Source = migration.Target.ConfigurationString,
            Target = migration.Source.ConfigurationString,
            MigrationId = "back",
            ExpectedInstances = 1,
            AllowTargetData = true,
            PollInterval = TimeSpan.FromMilliseconds(50),
            InstancesTimeout = TimeSpan.FromSeconds(30),
            SyncTimeout = TimeSpan.FromSeconds(30),
        });
        await coordinator.MigrateAsync();
        await load.MoreAsync(500);
        await load.StopAsync();

        Assert.Empty(load.Errors);
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide); // TARGET of 'back': the old server, the primary again
        Assert.Empty(await WriteLoad.MissingOnAsync(migration.SourceDb, load.Acknowledged));
        Assert.Contains("role:master", await migration.InfoAsync(migration.Source, "replication"));
    }

    private static Task WaitForLogAsync(HotSwapApp app, string text) =>
        Eventually.TrueAsync(() => Task.FromResult(app.Logs.GetSnapshot().Any(r => r.Message.Contains(text, StringComparison.Ordinal))), $"a log line '{text}'");
}
