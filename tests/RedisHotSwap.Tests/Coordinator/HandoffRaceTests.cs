using System.Collections.Concurrent;
using RedisHotSwap.Connection;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>
/// The two ways an armed instance learns of a handoff (its own write answered READONLY, and the directive the
/// coordinator pushes) arrive at the same moment; whichever wins, no write surfaces an error and none is lost.
/// </summary>
public sealed class HandoffRaceTests(ITestOutputHelper output)
{
    [Fact]
    public async Task DemotedAnswerDuringADirectiveSwitch_IsSentAgainOnTheNewPrimary()
    {
        const int rounds = 40;
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: null));
        var multiplexer = (HotSwapConnectionMultiplexer)app.Multiplexer;

        // Either server may be demoted: each can authenticate to the other, and refuses writes as a replica.
        await migration.SourceDb.ExecuteAsync("CONFIG", "SET", "masterauth", migration.Target.Password, "replica-read-only", "yes");
        await migration.TargetDb.ExecuteAsync("CONFIG", "SET", "replica-read-only", "yes");
        var db = app.Multiplexer.GetDatabase();

        // A subscription makes the switch's warm-up a round trip: the window between taking the armed route and
        // moving traffic to it is then as wide as it is in an application.
        await app.Multiplexer.GetSubscriber().SubscribeAsync(RedisChannel.Literal("race"), (_, _) => { });
        var errors = new ConcurrentQueue<Exception>();
        var acknowledged = new long[32];
        using var stop = new CancellationTokenSource();
        var writers = Increment(db, "race", acknowledged, errors, stop.Token);

        var (primary, replica) = (migration.Source, migration.Target);
        for (var round = 0; round < rounds; round++)
        {
            var next = replica == migration.Target ? RedisSide.Target : RedisSide.Source;
            await multiplexer.ArmAsync(next, epoch: round + 1, CancellationToken.None);
            await HandOffAsync(Admin(migration, primary), Admin(migration, replica), replica);

            // The directive's switch races the demoted answers of the writes the pause held.
            await multiplexer.SwitchToAsync(next, "directive (test)", CancellationToken.None);
            Assert.Equal(next, app.Controller.ActiveSide);
            (primary, replica) = (replica, primary);
        }

        await stop.CancelAsync();
        await Task.WhenAll(writers);
        output.WriteLine($"{rounds} handoffs, {acknowledged.Sum():N0} increments acknowledged, {errors.Count} errors");
        foreach (var record in app.Logs.GetSnapshot().Where(r => r.Level >= Microsoft.Extensions.Logging.LogLevel.Information))
        {
            output.WriteLine($"{record.Timestamp:HH:mm:ss.fff} {record.Level} {record.Message}");
        }

        foreach (var error in errors.Take(3))
        {
            output.WriteLine(error.ToString());
        }

        Assert.Empty(errors.Select(e => e.Message).Distinct());
        var final = Admin(migration, primary).GetDatabase();
        for (var w = 0; w < acknowledged.Length; w++)
        {
            Assert.Equal(acknowledged[w], (long)await final.StringGetAsync($"race:{w}"));
        }
    }

    // The coordinator seals the old primary (min-replicas-to-write above its replicas) behind the pause, then promotes
    // the replica. Redis checks the replicas before the pause: a write arriving in between is refused (NOREPLICAS), not
    // held. Proof that it did not run, so it waits for the promotion and runs there. Here the seal stands long (no
    // pause, the promotion only once every writer has met it) to make that moment as wide as a test needs.
    [Fact]
    public async Task WritesThatMeetTheSealBeforeThePromotion_WaitAndRunOnTheNewPrimary()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: null));
        var errors = new ConcurrentQueue<Exception>();
        var acknowledged = new long[8];
        using var stop = new CancellationTokenSource();
        var writers = await WritingIntoTheSealAsync(migration, app, "sealed", acknowledged, errors, stop.Token);

        await Eventually.TrueAsync(async () => Offset(await migration.SourceDb.ExecuteAsync("INFO", "replication"), "master_repl_offset") == Offset(await migration.TargetDb.ExecuteAsync("INFO", "replication"), "slave_repl_offset"), "the replica to catch up");
        await migration.TargetDb.ExecuteAsync("REPLICAOF", "NO", "ONE");
        await migration.SourceDb.ExecuteAsync("REPLICAOF", "127.0.0.1", migration.Target.Port);
        await migration.SourceDb.ExecuteAsync("CONFIG", "SET", "min-replicas-to-write", "0");
        await Eventually.TrueAsync(() => Task.FromResult(app.Controller.ActiveSide == RedisSide.Target), "traffic to move to the promoted side");
        var moved = acknowledged.Sum();
        await Eventually.TrueAsync(() => Task.FromResult(acknowledged.Sum() > moved + 100), "writes to go on there");

        await stop.CancelAsync();
        await Task.WhenAll(writers);
        Assert.Empty(errors.Select(e => e.Message).Distinct());
        await migration.TargetAdmin.ConfigureAsync();
        for (var w = 0; w < acknowledged.Length; w++)
        {
            Assert.Equal(acknowledged[w], (long)await migration.TargetDb.StringGetAsync($"sealed:{w}"));
        }
    }

    // The armed side restarts while the old primary is sealed and comes back a primary of its own, holding nothing (no
    // persistence, no replicaof in its configuration). Asked ROLE, it says "master": had the writes that met the seal
    // moved on that, they would run on an empty server the coordinator never promoted (it refuses a successor with
    // another run id) and be lost when the handoff is called off. They stay, and run on the old primary once it is.
    [Fact]
    public async Task WritesThatMeetTheSeal_DoNotMoveToAnArmedSideThatRestartedAsAPrimary()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        var settings = HotSwapApp.Settings(migration, migrationId: null);
        settings["RedisHotSwap:DrainTimeout"] = "00:01:00"; // the writes wait as long as the test needs, not a bound's worth
        await using var app = HotSwapApp.Create(migration, settings: settings);
        var multiplexer = (HotSwapConnectionMultiplexer)app.Multiplexer;
        var errors = new ConcurrentQueue<Exception>();
        var acknowledged = new long[8];
        using var stop = new CancellationTokenSource();
        var writers = await WritingIntoTheSealAsync(migration, app, "restarted", acknowledged, errors, stop.Token);

        // The same address and password, another process: a primary with no data.
        var port = migration.Target.Port;
        await migration.Target.DisposeAsync();
        await using var restarted = await Testing.RedisServerProcess.StartAsync(migration.Target.Password, port: port);
        await using var admin = await ConnectionMultiplexer.ConnectAsync(restarted.ConfigurationString);
        await Eventually.TrueAsync(
            () => Task.FromResult(multiplexer.ArmedRoute is { Multiplexer.IsConnected: true } || app.Controller.ActiveSide == RedisSide.Target),
            "the armed connection to reach the restarted server");

        // What the sealed writes keep trying, once more by hand: the restarted server answers as a primary, and is refused.
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
        await Assert.ThrowsAsync<RedisHotSwapException>(() => multiplexer.SwitchToAsync(RedisSide.Target, "sealed (test)", CancellationToken.None, handoff: true, sealedOnly: true));
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
        Assert.Equal(0, (long)await admin.GetDatabase().ExecuteAsync("DBSIZE"));

        // Called off: disarmed, the seal lifted; the writes that waited run on the old primary.
        await multiplexer.DisarmAsync();
        await migration.SourceDb.ExecuteAsync("CONFIG", "SET", "min-replicas-to-write", "0");
        var calledOff = acknowledged.Sum();
        await Eventually.TrueAsync(() => Task.FromResult(acknowledged.Sum() > calledOff + 100), "writes to go on on the old primary");
        await stop.CancelAsync();
        await Task.WhenAll(writers);

        Assert.Empty(errors.Select(e => e.Message).Distinct());
        Assert.Equal(0, (long)await admin.GetDatabase().ExecuteAsync("DBSIZE"));
        for (var w = 0; w < acknowledged.Length; w++)
        {
            Assert.Equal(acknowledged[w], (long)await migration.SourceDb.StringGetAsync($"restarted:{w}"));
        }
    }

    // Arms the instance for TARGET, starts the writers, then seals SOURCE (min-replicas-to-write above its replicas,
    // with no pause) and returns once every writer has met the seal.
    private static async Task<Task[]> WritingIntoTheSealAsync(Migration migration, HotSwapApp app, string prefix, long[] acknowledged, ConcurrentQueue<Exception> errors, CancellationToken stop)
    {
        await migration.SourceDb.ExecuteAsync("CONFIG", "SET", "masterauth", migration.Target.Password, "replica-read-only", "yes");
        await migration.TargetDb.ExecuteAsync("CONFIG", "SET", "replica-read-only", "yes");
        await ((HotSwapConnectionMultiplexer)app.Multiplexer).ArmAsync(RedisSide.Target, epoch: 1, CancellationToken.None);
        var writers = Increment(app.Multiplexer.GetDatabase(), prefix, acknowledged, errors, stop);
        await Eventually.TrueAsync(() => Task.FromResult(acknowledged.All(a => a > 0)), "every writer to write");
        await migration.SourceDb.ExecuteAsync("CONFIG", "SET", "min-replicas-to-write", "2");
        await Eventually.TrueAsync(async () => Refused(await migration.InfoAsync(migration.Source, "errorstats")) >= acknowledged.Length, "every writer to meet the seal");
        return writers;
    }

    // One loop per counter, each incrementing its own key until stopped, counting what was acknowledged and what failed.
    private static Task[] Increment(IDatabase db, string prefix, long[] acknowledged, ConcurrentQueue<Exception> errors, CancellationToken stop) =>
        Enumerable.Range(0, acknowledged.Length).Select(w => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await db.StringIncrementAsync($"{prefix}:{w}");
                    acknowledged[w]++;
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    errors.Enqueue(ex);
                }
            }
        })).ToArray();

    private static long Refused(string errorstats) =>
        errorstats.Split('\n').FirstOrDefault(l => l.StartsWith("errorstat_NOREPLICAS:count=", StringComparison.Ordinal)) is { } line
            ? long.Parse(line["errorstat_NOREPLICAS:count=".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture)
            : 0;

    private static ConnectionMultiplexer Admin(Migration migration, Testing.RedisServerProcess server) =>
        server == migration.Source ? migration.SourceAdmin : migration.TargetAdmin;

    // What the coordinator's fence does, by hand: pause writes, let the replica catch up, promote it, demote the
    // primary under it and release the pause in one pipeline.
    private static async Task HandOffAsync(ConnectionMultiplexer primary, ConnectionMultiplexer replica, Testing.RedisServerProcess replicaServer)
    {
        var p = primary.GetDatabase();
        var r = replica.GetDatabase();
        await p.ExecuteAsync("CLIENT", "PAUSE", 5000, "WRITE");
        await Eventually.TrueAsync(async () => ((string)(await r.ExecuteAsync("INFO", "replication"))!).Contains("master_link_status:up"), "the replica's link");
        await Eventually.TrueAsync(async () => Offset(await p.ExecuteAsync("INFO", "replication"), "master_repl_offset") == Offset(await r.ExecuteAsync("INFO", "replication"), "slave_repl_offset"), "the replica to catch up");
        await r.ExecuteAsync("REPLICAOF", "NO", "ONE");
        var demote = p.ExecuteAsync("REPLICAOF", "127.0.0.1", replicaServer.Port);
        var unpause = p.ExecuteAsync("CLIENT", "UNPAUSE");
        await Task.WhenAll(demote, unpause);
    }

    private static long Offset(RedisResult info, string field) =>
        long.Parse(((string)info!).Split('\n').First(l => l.StartsWith(field + ":", StringComparison.Ordinal))[(field.Length + 1)..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
}
