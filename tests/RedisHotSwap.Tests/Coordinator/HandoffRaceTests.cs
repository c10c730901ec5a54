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
        var writers = Enumerable.Range(0, acknowledged.Length).Select(w => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await db.StringIncrementAsync($"race:{w}");
                    acknowledged[w]++;
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    errors.Enqueue(ex);
                }
            }
        })).ToArray();

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
