using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>
/// A fault after each command the coordinator sends to change a server (the command ran; its answer is lost to a
/// dropped connection or a timeout), at every step of a migration, under a checked load: the same command run again
/// finishes it, and the application sees no error and loses no acknowledged write.
/// </summary>
public sealed class FaultSuiteTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Handoff_AFaultAfterEveryServerCommand_TheSameCommandAgainFinishesItLosingNothing()
    {
        var outcomes = new List<Outcome>();
        for (var step = 1; ; step++)
        {
            var (injected, outcome) = await FaultAtAsync(step);
            outcomes.Add(outcome);
            output.WriteLine(outcome.ToString());
            if (!injected)
            {
                break; // the migration sent fewer server-changing commands than this: every one was tried
            }
        }

        Assert.True(outcomes.Count > 8, string.Join('\n', outcomes.Select(o => o.Fault))); // replication, arming, the fence, the promotion, the restore
        ReadmeSection.Check("handoff-faults", string.Join('\n', [
            "| # | the command that ran, its answer then lost | the run | the same command again |",
            "|---:|---|---|---|",
            .. outcomes.Select((o, i) => $"| {i + 1} | {o.Fault} | {o.FirstRun} | {o.Again} |")]));
    }

    private sealed record Outcome(string Fault, string FirstRun, string Again);

    private async Task<(bool Injected, Outcome Outcome)> FaultAtAsync(int step)
    {
        var id = $"fault{step}";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new ConsistencyLoad(app.Multiplexer.GetDatabase(), id, loops: 4);
        await load.MoreAsync(200);

        var sent = 0;
        string? faulted = null;
        Exception? failure = null;
        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o =>
        {
            o.ExpectedInstances = 1;
            o.Audit = line =>
            {
                if (Interlocked.Increment(ref sent) == step)
                {
                    faulted = line;
                    throw step % 2 == 0
                        ? new RedisTimeoutException(CommandFlags.None, "Timeout awaiting response (injected after the command ran)", CommandStatus.Sent)
                        : new RedisConnectionException(ConnectionFailureType.SocketFailure, CommandFlags.None, "connection dropped (injected after the command ran)", null, CommandStatus.Sent);
                }
            };
        }))
        {
            try
            {
                await coordinator.MigrateAsync();
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        }

        if (faulted is null)
        {
            Assert.Null(failure);
        }
        else if (failure is not null)
        {
            // The operator runs the same command again. (A fault the coordinator could see through, by asking the
            // server what became of the command, may also let the first run finish.)
            await using var again = await CoordinatorCli.ObserverAsync(migration, id, o => o.ExpectedInstances = 1);
            await again.MigrateAsync();
        }

        await load.MoreAsync(200);
        await load.StopAsync();
        var step1 = faulted is null ? "no fault (every step was tried)" : $"fault after: {faulted}";
        Assert.True(load.Errors.Count == 0, $"{step1}: {load.Errors.FirstOrDefault()}");
        Assert.True(load.Violations.Count == 0, $"{step1}: {load.Violations.FirstOrDefault()}");
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Source, "replication"));
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        foreach (var admin in new[] { migration.SourceAdmin, migration.TargetAdmin })
        {
            // The seal is lifted once the old primary is a replica (its role refuses writes), on every path.
            Assert.Equal("0", (await admin.GetServers()[0].ConfigGetAsync("min-replicas-to-write"))[0].Value);
        }

        var missing = await ConsistencyLoad.MissingOnAsync(migration.TargetDb, load.Expected());
        Assert.True(missing.Length == 0, $"{step1}: {missing.Length} acknowledged writes missing on TARGET, e.g. {missing.FirstOrDefault()}");
        // Without the run's numbers (ports, counts), so that the README's table is the same from run to run.
        var fault = faulted is null
            ? "none (the migration sent no further command)"
            : $"`{System.Text.RegularExpressions.Regex.Replace(faulted, @"127\.0\.0\.1 \d+", "host port").Replace(" (", "` (", StringComparison.Ordinal)}, then {(step % 2 == 0 ? "a timeout" : "a dropped connection")}";
        var firstRun = failure is null ? "finished all the same" : "stopped, said what it left and what to run";
        var rerun = failure is null ? "-" : "finished";
        output.WriteLine($"{load.Writes:N0} acknowledged writes, 0 errors, 0 violations, 0 missing on TARGET");
        return (faulted is not null, new Outcome(fault, faulted is null ? "finished" : firstRun, rerun));
    }
}
