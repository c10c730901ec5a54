using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>
/// A fault right after each command the coordinator sends to change a server, at every step of a handoff, under a
/// checked load: the command ran and its answer was lost (a dropped connection, a timeout), or the coordinator was
/// killed (SIGKILL). The same command run again finishes the migration; nothing acknowledged is lost, nothing read is
/// older than what was acknowledged, and the servers end as a handoff leaves them.
/// </summary>
public sealed class FaultSuiteTests(ITestOutputHelper output)
{
    private const string NoFault = "none (the migration sent no further command)";

    [Fact]
    public async Task Handoff_AFaultAfterEveryServerCommand_TheSameCommandAgainFinishesItLosingNothing()
    {
        var outcomes = await EveryStepAsync(FaultAtAsync);
        ReadmeSection.Check("handoff-faults", Table("the command that ran, its answer then lost", outcomes));
    }

    [Fact]
    public async Task Handoff_CoordinatorKilledAfterEveryServerCommand_TheSameCommandAgainFinishesItLosingNothing()
    {
        var outcomes = await EveryStepAsync(KilledAtAsync);
        ReadmeSection.Check("handoff-kills", Table("the last command before SIGKILL", outcomes));
    }

    private sealed record Outcome(string Fault, string FirstRun, string Again);

    // A run without a fault names every step (its audit trail); then one run per step, the fault aimed at it.
    private async Task<List<Outcome>> EveryStepAsync(Func<string?, int, Task<Outcome>> at)
    {
        var steps = new List<string>();
        var names = new AuditStep();
        var outcomes = new List<Outcome> { await FaultAtAsync(null, 0, line => steps.Add(names.Next(line))) };
        Assert.True(steps.Count > 8, string.Join('\n', steps)); // arming, the fence, the promotion, the restore, the persistence
        for (var i = 0; i < steps.Count; i++)
        {
            outcomes.Add(await at(steps[i], i));
            output.WriteLine(outcomes[^1].ToString());
        }

        return outcomes;
    }

    private static string Table(string fault, List<Outcome> outcomes) => string.Join('\n', [
        $"| {fault} | the run | the same command again |",
        "|---|---|---|",
        .. outcomes.Select(o => $"| {o.Fault} | {o.FirstRun} | {o.Again} |")]);

    // The step's audit line as the README shows it (without what changes from run to run).
    private static string Shown(string step) => $"`{step[..step.LastIndexOf('#')].Replace(" (", "` (", StringComparison.Ordinal)}";

    private Task<Outcome> FaultAtAsync(string? step, int index) => FaultAtAsync(step, index, observe: null);

    // In this process: after the named command ran, its answer is lost (a dropped connection or a timeout, in turn).
    private async Task<Outcome> FaultAtAsync(string? step, int index, Action<string>? observe)
    {
        var id = $"fault{index}";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new ConsistencyLoad(app.Multiplexer.GetDatabase(), id, loops: 4);
        await load.MoreAsync(200);

        var names = new AuditStep();
        var faulted = false;
        var timeout = step is not null && step.Sum(c => c) % 2 == 1; // by the step, not its place: pipelined steps come in either order
        Exception? failure = null;
        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o =>
        {
            o.ExpectedInstances = 1;
            o.Audit = line =>
            {
                observe?.Invoke(line);
                if (names.Next(line) == step && !faulted)
                {
                    faulted = true;
                    throw timeout
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

        Assert.True(step is null || faulted, $"the migration never sent {step}");
        if (step is null)
        {
            Assert.Null(failure);
        }
        else if (failure is not null)
        {
            // The operator runs the same command again. (A fault the coordinator sees through, by asking the server what
            // became of the command, or at a step that needs no answer, lets the first run finish.)
            await using var again = await CoordinatorCli.ObserverAsync(migration, id, o => o.ExpectedInstances = 1);
            await again.MigrateAsync();
        }

        await CheckAsync(migration, app, load, step is null ? "no fault" : $"fault after {step}", allowRefusals: false);
        return step is null
            ? new Outcome(NoFault, "finished", "-")
            : new Outcome($"{Shown(step)}, then {(timeout ? "a timeout" : "a dropped connection")}",
                failure is null ? "finished all the same" : "stopped, said what it left and what to run",
                failure is null ? "-" : "finished");
    }

    // The coordinator in a process of its own, killed right after the named command ran (see KilledCoordinator).
    private async Task<Outcome> KilledAtAsync(string? step, int index)
    {
        var id = $"killed{index}";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new ConsistencyLoad(app.Multiplexer.GetDatabase(), id, loops: 4);
        await load.MoreAsync(200);

        var info = new System.Diagnostics.ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "RedisHotSwap.TestApp.dll"), "coordinator", step!])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["REDIS_HOTSWAP_SOURCE"] = migration.Source.ConfigurationString;
        info.Environment["REDIS_HOTSWAP_TARGET"] = migration.Target.ConfigurationString;
        info.Environment["REDIS_HOTSWAP_MIGRATION"] = id;
        using var process = System.Diagnostics.Process.Start(info)!;
        var said = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        Assert.True((await said).Contains("killed after: ", StringComparison.Ordinal), $"not killed after {step}: exit {process.ExitCode}: {await said}{await errors}");

        // The operator runs the same command again.
        var (exit, again) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1");
        Assert.True(exit == 0, $"after a kill after {step}: {again}");

        // While no coordinator runs, a sealed SOURCE refuses writes rather than lose them (NOREPLICAS): an error the
        // application sees, never a lost write.
        await CheckAsync(migration, app, load, $"killed after {step}", allowRefusals: true);
        return new Outcome(Shown(step!), "killed", "finished");
    }

    private async Task<int> CheckAsync(Migration migration, HotSwapApp app, ConsistencyLoad load, string what, bool allowRefusals)
    {
        await load.MoreAsync(200);
        await load.StopAsync();
        var refused = load.Errors.Count(e => allowRefusals && e is RedisServerException { Kind: RedisErrorKind.NoReplicas });
        var unexpected = load.Errors.Where(e => !(allowRefusals && e is RedisServerException { Kind: RedisErrorKind.NoReplicas })).ToArray();
        Assert.True(unexpected.Length == 0, $"{what}: {unexpected.FirstOrDefault()}");
        Assert.True(load.Violations.Count == 0, $"{what}: {load.Violations.FirstOrDefault()}");
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Source, "replication"));
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        foreach (var admin in new[] { migration.SourceAdmin, migration.TargetAdmin })
        {
            // The seal is lifted once the old primary is a replica (its role refuses writes), on every path.
            Assert.Equal("0", (await admin.GetServers()[0].ConfigGetAsync("min-replicas-to-write"))[0].Value);
        }

        var missing = await ConsistencyLoad.MissingOnAsync(migration.TargetDb, load.Expected());
        Assert.True(missing.Length == 0, $"{what}: {missing.Length} acknowledged writes missing on TARGET, e.g. {missing.FirstOrDefault()}");
        output.WriteLine($"{what}: {load.Writes:N0} acknowledged writes, {refused} refused (NOREPLICAS), 0 violations, 0 missing on TARGET");
        return refused;
    }
}
