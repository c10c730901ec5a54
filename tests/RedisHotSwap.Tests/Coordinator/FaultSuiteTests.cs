using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>
/// A fault right after each command the coordinator sends to change a server, at every step of a migration in each
/// cutover mode, under a checked load: the command ran and its answer was lost (a dropped connection, a timeout), or
/// the coordinator was killed (SIGKILL). The same command run again finishes the migration; nothing acknowledged is
/// lost, and the servers end as the mode leaves them.
/// </summary>
public sealed class FaultSuiteTests(ITestOutputHelper output)
{
    private const string NoFault = "none (the migration sent no further command)";

    // Each run writes its table: handoff-faults, handoff-kills, window-faults, window-kills.
    [Theory]
    [InlineData(CutoverMode.Handoff, false)]
    [InlineData(CutoverMode.Handoff, true)]
    [InlineData(CutoverMode.Window, false)]
    [InlineData(CutoverMode.Window, true)]
    public async Task AFaultOrAKillAfterEveryServerCommand_TheSameCommandAgainFinishesItLosingNothing(CutoverMode mode, bool kill)
    {
        var procedure = Procedure.Of(mode);
        var outcomes = await EveryStepAsync(procedure, kill ? KilledAtAsync : FaultAtAsync);
        ReadmeSection.Check($"{procedure.Name}-{(kill ? "kills" : "faults")}", Table(kill ? "the last command before SIGKILL" : "the command that ran, its answer then lost", outcomes));
    }

    /// <summary>
    /// How a migration runs in a cutover mode, the same for the coordinator in this process, the killed one and the
    /// operator's command run again. In the window mode the operator flips the instance once TARGET is writable, and
    /// the promotion's bound is short: a coordinator killed behind the pause holds its lease through it.
    /// </summary>
    private sealed record Procedure(CutoverMode Mode, TimeSpan PromotionTimeout)
    {
        public static readonly Procedure Handoff = new(CutoverMode.Handoff, TimeSpan.FromSeconds(30));

        public static readonly Procedure Window = new(CutoverMode.Window, TimeSpan.FromSeconds(2));

        public static Procedure Of(CutoverMode mode) => mode == CutoverMode.Window ? Window : Handoff;

        public string Name => Mode.ToString().ToLowerInvariant();

        public string[] MigrateArgs => Mode == CutoverMode.Handoff
            ? ["migrate", "--expect-instances", "1"] // as the handoff rows always ran: the mode chosen by the servers
            : ["migrate", "--expect-instances", "1", "--cutover", Name, "--promotion-timeout", PromotionTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture)];

        public string[] KilledArgs(string step) => ["coordinator", step, Name, PromotionTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture)];

        public void Configure(CoordinatorOptions options)
        {
            options.ExpectedInstances = 1;
            if (Mode == CutoverMode.Window)
            {
                (options.Cutover, options.PromotionTimeout) = (Mode, PromotionTimeout);
            }
        }

        /// <summary>The operator's part: none in a handoff; in the window, flip the instance once the coordinator has opened it, whichever run does.</summary>
        public async Task OperateAsync(Migration migration, string id, HotSwapApp app)
        {
            if (Mode == CutoverMode.Window)
            {
                await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);
                app.SetUseTarget(true);
            }
        }
    }

    private sealed record Outcome(string Fault, string FirstRun, string Again);

    // A run without a fault names every step (its audit trail); then one run per step, the fault aimed at it.
    private async Task<List<Outcome>> EveryStepAsync(Procedure procedure, Func<Procedure, string?, int, Task<Outcome>> at)
    {
        var steps = new List<string>();
        var names = new AuditStep();
        var outcomes = new List<Outcome> { await FaultAtAsync(procedure, null, 0, line => steps.Add(names.Next(line))) };
        Assert.True(steps.Count > 8, string.Join('\n', steps)); // the fence, the promotion, the restore, the persistence
        for (var i = 0; i < steps.Count; i++)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            outcomes.Add(await at(procedure, steps[i], i));
            output.WriteLine($"{outcomes[^1]} ({System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:0.0} s)");
        }

        return outcomes;
    }

    private static string Table(string fault, List<Outcome> outcomes) => string.Join('\n', [
        $"| {fault} | the run | the same command again |",
        "|---|---|---|",
        .. outcomes.Select(o => $"| {o.Fault} | {o.FirstRun} | {o.Again} |")]);

    // The step's audit line as the README shows it (without what changes from run to run).
    private static string Shown(string step) => $"`{step[..step.LastIndexOf('#')].Replace(" (", "` (", StringComparison.Ordinal)}";

    private Task<Outcome> FaultAtAsync(Procedure procedure, string? step, int index) => FaultAtAsync(procedure, step, index, observe: null);

    // In this process: after the named command ran, its answer is lost (a dropped connection or a timeout, in turn).
    private async Task<Outcome> FaultAtAsync(Procedure procedure, string? step, int index, Action<string>? observe)
    {
        var id = $"fault{index}";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new ConsistencyLoad(app.Multiplexer.GetDatabase(), id, loops: 4);
        await load.MoreAsync(200);
        var operating = procedure.OperateAsync(migration, id, app);

        var names = new AuditStep();
        var faulted = false;
        var timeout = step is not null && step.Sum(c => c) % 2 == 1; // by the step, not its place: pipelined steps come in either order
        Exception? failure = null;
        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o =>
        {
            procedure.Configure(o);
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
            await using var again = await CoordinatorCli.ObserverAsync(migration, id, procedure.Configure);
            await again.MigrateAsync();
        }

        await operating;
        await CheckAsync(procedure, migration, app, load, step is null ? "no fault" : $"fault after {step}", allowRefusals: false);
        return step is null
            ? new Outcome(NoFault, "finished", "-")
            : new Outcome($"{Shown(step)}, then {(timeout ? "a timeout" : "a dropped connection")}",
                failure is null ? "finished all the same" : "stopped, said what it left and what to run",
                failure is null ? "-" : "finished");
    }

    // The coordinator in a process of its own, killed right after the named command ran (see KilledCoordinator).
    private async Task<Outcome> KilledAtAsync(Procedure procedure, string? step, int index)
    {
        var id = $"killed{index}";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var load = new ConsistencyLoad(app.Multiplexer.GetDatabase(), id, loops: 4);
        await load.MoreAsync(200);
        var operating = procedure.OperateAsync(migration, id, app);

        var info = new System.Diagnostics.ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "RedisHotSwap.TestApp.dll"), .. procedure.KilledArgs(step!)])
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
        var (exit, again) = await CoordinatorCli.RunAsync(migration, id, procedure.MigrateArgs);
        Assert.True(exit == 0, $"after a kill after {step}: {again}");

        // While no coordinator runs, a sealed SOURCE refuses writes rather than lose them (NOREPLICAS): an error the
        // application sees, never a lost write.
        await operating;
        await CheckAsync(procedure, migration, app, load, $"killed after {step}", allowRefusals: true);
        return new Outcome(Shown(step!), "killed", "finished");
    }

    private async Task CheckAsync(Procedure procedure, Migration migration, HotSwapApp app, ConsistencyLoad load, string what, bool allowRefusals)
    {
        await load.MoreAsync(200);
        await load.StopAsync();
        var refused = load.Errors.Count(e => allowRefusals && e is RedisServerException { Kind: RedisErrorKind.NoReplicas });
        var unexpected = load.Errors.Where(e => !(allowRefusals && e is RedisServerException { Kind: RedisErrorKind.NoReplicas })).ToArray();
        Assert.True(unexpected.Length == 0, $"{what}: {unexpected.FirstOrDefault()}");
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        if (procedure.Mode == CutoverMode.Handoff)
        {
            Assert.True(load.Violations.Count == 0, $"{what}: {load.Violations.FirstOrDefault()}");
            Assert.Contains("role:slave", await migration.InfoAsync(migration.Source, "replication"));
            foreach (var admin in new[] { migration.SourceAdmin, migration.TargetAdmin })
            {
                // The seal is lifted once the old primary is a replica (its role refuses writes), on every path.
                Assert.Equal("0", await ConfigAsync(admin, "min-replicas-to-write"));
            }
        }
        else
        {
            await CheckFencedAsync(migration, what);
        }

        // Every acknowledged write, each loop's last value and each counter at exactly its acknowledged increments.
        var missing = await ConsistencyLoad.MissingOnAsync(migration.TargetDb, load.Expected());
        Assert.True(missing.Length == 0, $"{what}: {missing.Length} acknowledged writes missing on TARGET, e.g. {missing.FirstOrDefault()}");
        output.WriteLine($"{what}: {load.Writes:N0} acknowledged writes, {refused} refused (NOREPLICAS), {load.Violations.Count} violations, 0 missing on TARGET");
    }

    // After a window promotion: SOURCE refuses every write, read back and in its configuration file (a restart keeps
    // it refusing); the settings the coordinator changed for the fence and the replication are back as they were.
    private static async Task CheckFencedAsync(Migration migration, string what)
    {
        var refused = await Assert.ThrowsAsync<RedisServerException>(() => migration.SourceDb.StringSetAsync("__test:fenced", "taken?"));
        Assert.True(refused.Message.StartsWith("NOREPLICAS", StringComparison.Ordinal), $"{what}: {refused.Message}");
        var fence = await ConfigAsync(migration.SourceAdmin, "min-replicas-to-write");
        var file = (await migration.InfoAsync(migration.Source, "server")).Split('\n').Single(l => l.StartsWith("config_file:", StringComparison.Ordinal))["config_file:".Length..].Trim();
        Assert.True((await File.ReadAllLinesAsync(file)).Contains($"min-replicas-to-write {fence}"), $"{what}: SOURCE's fence (min-replicas-to-write {fence}) is not in {file}");
        Assert.Equal("10", await ConfigAsync(migration.SourceAdmin, "min-replicas-max-lag"));
        Assert.Equal("0", await ConfigAsync(migration.TargetAdmin, "min-replicas-to-write"));
        Assert.Equal(string.Empty, await ConfigAsync(migration.TargetAdmin, "masterauth"));
    }

    private static async Task<string> ConfigAsync(ConnectionMultiplexer admin, string key) =>
        (await admin.GetServers()[0].ConfigGetAsync(key))[0].Value;
}
