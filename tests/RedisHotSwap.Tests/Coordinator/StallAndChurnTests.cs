using System.Text.Json;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>
/// SOURCE stalled (SIGSTOP, then SIGCONT) in each phase of both cutover modes, and application instances killed and
/// replaced mid-cutover, each under the checked load of instance processes: the coordinator stops on its own in one
/// line or finishes, never promotes what it could not verify, and the same command run again finishes; no
/// acknowledged write is lost, no read is older than an acknowledged write, every counter is exact.
/// </summary>
public sealed class StallAndChurnTests(ITestOutputHelper output)
{
    // The coordinator's connections give up after 2 s (an operator's setting; StackExchange.Redis's default is 5 s);
    // the instances' after a minute, so that a stall they wait out is latency, never an error.
    private const string CoordinatorTimeouts = ",syncTimeout=2000,asyncTimeout=2000";
    private const string InstanceTimeouts = ",syncTimeout=60000,asyncTimeout=60000";

    // Past this, a coordinator still running against a frozen SOURCE counts as hung.
    private static readonly TimeSpan StallBound = TimeSpan.FromSeconds(45);

    // Where SOURCE freezes: right after the coordinator sent the step (its audit line, without its time).
    private static readonly (CutoverMode Mode, string Phase, string Step)[] Stalls =
    [
        (CutoverMode.Handoff, "during the initial sync", "TARGET: REPLICAOF host port"),
        (CutoverMode.Handoff, "while the instances are armed", "SOURCE: CONFIG SET masterauth"),
        (CutoverMode.Handoff, "behind the write pause and the seal, before the promotion", "SOURCE: CONFIG SET min-replicas-to-write"),
        (CutoverMode.Handoff, "right after the promotion", "TARGET: REPLICAOF NO ONE"),
        (CutoverMode.Window, "during the initial sync", "TARGET: REPLICAOF host port"),
        (CutoverMode.Window, "as the writable window opens", "TARGET: CONFIG SET replica-read-only 'no'"),
        (CutoverMode.Window, "behind the fence and the write pause, before the promotion", "SOURCE: CLIENT PAUSE"),
        (CutoverMode.Window, "right after the promotion", "TARGET: REPLICAOF NO ONE"),
    ];

    [Fact]
    public async Task Migrate_SourceStalledInEachPhase_StopsInOneLineAndTheSameCommandAgainFinishesLosingNothing()
    {
        var rows = new List<string>();
        for (var i = 0; i < Stalls.Length; i++)
        {
            rows.Add(await StallAtAsync(Stalls[i].Mode, Stalls[i].Phase, Stalls[i].Step, i));
        }

        ReadmeSection.Check("source-stalls", string.Join('\n', [
            "| mode | SOURCE stalled (SIGSTOP) | the run | the same command again, after SIGCONT |",
            "|---|---|---|---|",
            .. rows]));
    }

    [Theory]
    [InlineData(CutoverMode.Handoff)]
    [InlineData(CutoverMode.Window)]
    public async Task Cli_SourceStalledWhileTheMigrationWaits_StopsWithExit1AndValidJsonLines(CutoverMode mode)
    {
        var id = $"stall-json-{mode}".ToLowerInvariant();
        await using var migration = await Migration.StartAsync();
        await using var instance = await ExternalInstance.StartAsync(InstanceSettings(migration, id), load: "consistency");

        // Two instances expected, one running: the migration waits (for the arming, or for the instances to move) until SOURCE freezes.
        using var process = CoordinatorCli.Start(migration, id, "migrate", "--cutover", mode.ToString().ToLowerInvariant(), "--json", "--expect-instances", "2");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await CoordinatorCli.WaitForPhaseAsync(migration, id, mode == CutoverMode.Handoff ? MigrationPhase.Arming : MigrationPhase.Cutover);
        await migration.Source.SuspendAsync();
        bool ended;
        try
        {
            ended = await Task.WhenAny(process.WaitForExitAsync(), Task.Delay(StallBound)) is { } first && first.IsCompletedSuccessfully && process.HasExited;
        }
        finally
        {
            await migration.Source.ResumeAsync();
        }

        if (!ended)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync();
        var (said, errors) = (await stdout, await stderr);
        Assert.True(ended, $"still running {StallBound.TotalSeconds} s after SOURCE froze: {said}{errors}");
        Assert.True(process.ExitCode == 1, $"exit {process.ExitCode}: {said}{errors}");
        Assert.Equal(string.Empty, errors);
        var events = said.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToArray(); // every line one JSON object
        var failed = events[^1];
        Assert.Equal("failed", failed.GetProperty("event").GetString());
        Assert.DoesNotContain("\n", failed.GetProperty("problem").GetString());
        Assert.DoesNotContain(" at RedisHotSwap.", said, StringComparison.Ordinal); // no stack trace
        output.WriteLine($"{mode}: {failed}");

        // Thawed, the same command finishes once the instances the operator promised are there.
        await using var second = await ExternalInstance.StartAsync(InstanceSettings(migration, id, useTarget: mode == CutoverMode.Window), load: "consistency");
        await instance.SetUseTargetAsync(mode == CutoverMode.Window);
        var (exit, again) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--cutover", mode.ToString().ToLowerInvariant(), "--json", "--expect-instances", "2");
        Assert.True(exit == 0, again);
        foreach (var run in new[] { instance, second })
        {
            await CheckedAsync(migration, run, $"{mode}, stalled while it waited", allowRefusals: false);
        }
    }

    // Kill an instance (SIGKILL) right after the step named, start another configured for SOURCE: the killed one's
    // report expires, the new one follows the standing directive before its first command.
    [Theory]
    [InlineData(CutoverMode.Handoff, "SOURCE: CONFIG SET masterauth")]
    [InlineData(CutoverMode.Handoff, "SOURCE: CLIENT PAUSE")]
    [InlineData(CutoverMode.Handoff, null)]
    [InlineData(CutoverMode.Window, "SOURCE: CLIENT PAUSE")]
    [InlineData(CutoverMode.Window, null)]
    public async Task Migrate_AnInstanceKilledAndAnotherStarted_TheNewOneComesUpOnTheRightSideLosingNothing(CutoverMode mode, string? killAfter)
    {
        var id = $"churn-{mode}-{(killAfter is null ? "after" : killAfter.Split(' ')[^1])}".ToLowerInvariant();
        await using var migration = await Migration.StartAsync();
        await using var killed = await ExternalInstance.StartAsync(InstanceSettings(migration, id), load: "consistency");
        Task<ExternalInstance>? starting = null;
        var audit = killAfter is null ? null : new Action<string>(line =>
        {
            if (starting is null && AuditStep.Normalize(line).StartsWith(killAfter, StringComparison.Ordinal))
            {
                killed.Kill();
                starting = ExternalInstance.StartAsync(InstanceSettings(migration, id), load: "consistency"); // configured for SOURCE
            }
        });

        Assert.Null(await RunCoordinatorAsync(migration, id, mode, killed, audit));
        Assert.True(killAfter is null || starting is not null, $"the migration never sent {killAfter}");
        if (killAfter is null)
        {
            killed.Kill();
            starting = ExternalInstance.StartAsync(InstanceSettings(migration, id), load: "consistency");
        }

        await using var replacement = await starting!;

        // Started before the promotion, it must be on TARGET by now too (the coordinator waited for it); started after, it began there.
        await using (var observer = await CoordinatorCli.ObserverAsync(migration, id))
        {
            await Eventually.TrueAsync(async () => (await observer.StatusAsync()).Instances.Any(i => i.ProcessId == replacement.ProcessId && i.Side == RedisSide.Target),
                "the new instance to report TARGET");
        }

        await CheckedAsync(migration, replacement, $"{mode}, instance killed {(killAfter is null ? "after the promotion" : $"after {killAfter}")}", allowRefusals: false);
    }

    [Fact]
    public async Task Abort_CountsExactlyTheKeysChangedOnTargetUpdatesIncluded_AndWithoutTheOptionDiscardsNothing()
    {
        const string id = "abort-exact";
        await using var migration = await Migration.StartAsync();
        await using var instance = await ExternalInstance.StartAsync(InstanceSettings(migration, id), load: "consistency");
        await using var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o => o.ExpectedInstances = 2); // the cutover waits until stopped
        await coordinator.ReplicateAsync();
        await using var monitor = await TargetWrites.StartAsync(migration);

        // The window opens; the instance moves to TARGET and goes on there: new keys, and updates of keys it made on SOURCE.
        await OnTargetInTheWindowAsync(migration, coordinator, instance, id, () => monitor.AtLeastAsync(300));

        // Without the option: one line with the count so far, exit 2, nothing changed.
        var (exit, refused) = await CoordinatorCli.RunAsync(migration, id, "abort");
        Assert.True(exit == 2, refused);
        var line = Assert.Single(refused.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Contains("Abort would discard", line);
        Assert.Contains("--discard-target-writes", line);
        Assert.DoesNotContain("not an exact count", line); // the instance is live: it ships its marks as it leaves
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal(MigrationPhase.Cutover, (await coordinator.StatusAsync()).Phase);
        Assert.All((await coordinator.StatusAsync()).Instances, i => Assert.Equal(RedisSide.Target, i.Side));

        // With it, under the same load: the instance moves back, and the count is taken once nothing writes TARGET any more.
        await using var aborting = await CoordinatorCli.ObserverAsync(migration, id, o => o.DiscardTargetWrites = true);
        var discarded = await aborting.AbortAsync();
        var (created, updated) = await monitor.StopAsync(migration);
        output.WriteLine($"abort discarded {discarded:N0} keys; TARGET's own record: {created:N0} created there, {updated:N0} existing keys updated; refused first with: {line}");
        Assert.True(updated > 0 && created > 0, $"{created} created, {updated} updated: the load must do both on TARGET");
        Assert.Equal(created + updated, discarded);
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal(MigrationPhase.Aborted, (await coordinator.StatusAsync()).Phase);

        // Discarded knowingly: back on SOURCE, the instance reads what it wrote before the window (the violations its
        // checks report are those discarded writes), and never sees an error.
        var run = await instance.StopCheckedAsync();
        Assert.True(run.Errors == 0, run.Output);
        output.WriteLine($"the instance, back on SOURCE, saw {run.Violations} reads and counters older than what it wrote on TARGET (the discarded writes)");
    }

    // Killed on TARGET, an instance may take its last marks with it: abort cannot count what they named, so it says its
    // count is not exact (naming the instance) and still refuses without the option.
    [Fact]
    public async Task Abort_AnInstanceKilledOnTarget_SaysItsCountMayBeLow_AndStillRequiresTheOption()
    {
        const string id = "abort-killed";
        await using var migration = await Migration.StartAsync();
        await using var instance = await ExternalInstance.StartAsync(InstanceSettings(migration, id), load: "consistency");
        await using var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o => o.ExpectedInstances = 2); // the cutover waits until stopped
        await coordinator.ReplicateAsync();
        await OnTargetInTheWindowAsync(migration, coordinator, instance, id, () =>
        {
            instance.Kill();
            return Task.CompletedTask;
        });

        await Eventually.TrueAsync(async () => (await coordinator.StatusAsync()).Instances.Count == 0, "the killed instance's report to expire");
        var (exit, refused) = await CoordinatorCli.RunAsync(migration, id, "abort");
        Assert.True(exit == 2, refused);
        var line = Assert.Single(refused.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        output.WriteLine(line);
        Assert.Contains("Abort would discard at least", line);
        Assert.Contains("not an exact count", line);
        Assert.Contains("--discard-target-writes", line);
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));

        await using var aborting = await CoordinatorCli.ObserverAsync(migration, id, o => o.DiscardTargetWrites = true);
        await aborting.AbortAsync();
        Assert.Equal(MigrationPhase.Aborted, (await coordinator.StatusAsync()).Phase);
    }

    // Opens the writable window (the cutover runs until stopped), flips the instance, and once it reports TARGET runs
    // what the test does there; then stops the cutover.
    private static async Task OnTargetInTheWindowAsync(Migration migration, MigrationCoordinator coordinator, ExternalInstance instance, string id, Func<Task> there)
    {
        using var stopCutover = new CancellationTokenSource();
        var cutover = coordinator.CutoverAsync(stopCutover.Token);
        await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);
        await instance.SetUseTargetAsync(true);
        await Eventually.TrueAsync(async () => (await coordinator.StatusAsync()).Instances.Any(i => i.ProcessId == instance.ProcessId && i.Side == RedisSide.Target), "the instance to report TARGET");
        await there();
        await stopCutover.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cutover);
    }

    private static Dictionary<string, string?> InstanceSettings(Migration migration, string id, bool useTarget = false)
    {
        var settings = HotSwapApp.Settings(migration, useTarget, migrationId: id);
        settings["RedisHotSwap:Source"] += InstanceTimeouts;
        settings["RedisHotSwap:Target"] += InstanceTimeouts;
        return settings;
    }

    // One migration: an instance process under the checked load; SOURCE frozen right after the step; thawed once the
    // coordinator stopped (or the bound passed); the same command again.
    private async Task<string> StallAtAsync(CutoverMode mode, string phase, string step, int index)
    {
        var id = $"stall{index}";
        await using var migration = await Migration.StartAsync();
        await using var instance = await ExternalInstance.StartAsync(InstanceSettings(migration, id), load: "consistency");
        var stalled = 0;
        var first = RunCoordinatorAsync(migration, id, mode, instance, line =>
        {
            if (AuditStep.Normalize(line).StartsWith(step, StringComparison.Ordinal) && Interlocked.Exchange(ref stalled, 1) == 0)
            {
                migration.Source.SuspendAsync().GetAwaiter().GetResult(); // before the coordinator's next command
            }
        });
        var ended = await Task.WhenAny(first, Task.Delay(StallBound)) == first;
        if (stalled == 1)
        {
            await migration.Source.ResumeAsync();
        }

        var failure = await first.WaitAsync(TimeSpan.FromMinutes(2));
        var what = $"{mode}, SOURCE stalled {phase}";
        Assert.True(stalled == 1, $"{what}: the migration never sent {step}");
        Assert.True(ended, $"{what}: the coordinator still ran {StallBound.TotalSeconds} s after SOURCE froze");

        // What the CLI turns into one line and exit 1; anything else would be a bug (the CLI would say "Unexpected").
        Assert.True(failure is null or MigrationHaltedException or TimeoutException or RedisException, $"{what}: {failure}");
        output.WriteLine($"{what}: {(failure is null ? "finished" : $"{failure.GetType().Name}: {failure.Message.Split('\n')[0]}")}");
        if (failure is not null)
        {
            var again = await RunCoordinatorAsync(migration, id, mode, instance, audit: null);
            Assert.True(again is null, $"{what}, the same command again: {again}");
        }

        // Held behind a seal, an instance's write is refused (NOREPLICAS) rather than taken where TARGET might miss it.
        await CheckedAsync(migration, instance, what, allowRefusals: true);
        return $"| {mode.ToString().ToLowerInvariant()} | {phase} | {(failure is null ? "finished all the same" : "stopped in one line (exit 1)")} | {(failure is null ? "-" : "finished")} |";
    }

    // The coordinator as a library, as the CLI runs it; in the window mode the operator flips the instance once the window is open.
    private static async Task<Exception?> RunCoordinatorAsync(Migration migration, string id, CutoverMode mode, ExternalInstance instance, Action<string>? audit)
    {
        try
        {
            await using var coordinator = await MigrationCoordinator.ConnectAsync(new CoordinatorOptions
            {
                Source = migration.Source.ConfigurationString + CoordinatorTimeouts,
                Target = migration.Target.ConfigurationString + CoordinatorTimeouts,
                MigrationId = id,
                Cutover = mode,
                ExpectedInstances = 1,
                PollInterval = TimeSpan.FromMilliseconds(50),
                PromotionTimeout = TimeSpan.FromSeconds(2),
                Audit = line =>
                {
                    if (mode == CutoverMode.Window && line.Contains("replica-read-only 'no'", StringComparison.Ordinal))
                    {
                        _ = instance.SetUseTargetAsync(true);
                    }

                    audit?.Invoke(line);
                },
            });
            await coordinator.MigrateAsync();
            return null;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            return ex;
        }
    }

    // Stops the instance and checks what it saw and what TARGET, now the primary, holds.
    private async Task CheckedAsync(Migration migration, ExternalInstance instance, string what, bool allowRefusals)
    {
        var run = await instance.StopCheckedAsync();
        var errors = run.Output.Split('\n').Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToArray();
        Assert.True(run.Errors == 0 || (allowRefusals && errors.All(e => e.StartsWith("error: NOREPLICAS", StringComparison.Ordinal))), $"{what}: {run.Output}");
        Assert.True(run.Violations == 0, $"{what}: {run.Output}");
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        var missing = await ConsistencyLoad.MissingOnAsync(migration.TargetDb, run.Expected);
        Assert.True(missing.Length == 0, $"{what}: {missing.Length} acknowledged writes missing on TARGET, e.g. {missing.FirstOrDefault()}");
        output.WriteLine($"{what}: {run.Writes:N0} acknowledged writes, {run.Errors} refused, 0 violations, 0 missing on TARGET");
    }

    /// <summary>
    /// TARGET's own record of the application writes it executed from its clients (<c>MONITOR</c>, which shows no
    /// command replicated from SOURCE): the test's count, independent of the instances' marks.
    /// </summary>
    private sealed class TargetWrites : IAsyncDisposable
    {
        private readonly System.Net.Sockets.TcpClient client;
        private readonly Task reading;
        private readonly HashSet<string> keys = [];
        private readonly List<string> unexpected = [];
        private readonly string end = $"monitor-end-{Guid.NewGuid():N}";
        private readonly TaskCompletionSource ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly string sourcePeer;
        private long writes;

        private TargetWrites(System.Net.Sockets.TcpClient client, StreamReader reader, string sourcePeer)
        {
            this.client = client;
            this.sourcePeer = sourcePeer;
            reading = Task.Run(() => ReadAsync(reader));
        }

        public static async Task<TargetWrites> StartAsync(Migration migration)
        {
            var client = new System.Net.Sockets.TcpClient();
            await client.ConnectAsync(System.Net.IPAddress.Loopback, migration.Target.Port);
            var stream = client.GetStream();
            var password = migration.Target.Password;
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes($"*2\r\n$4\r\nAUTH\r\n${password.Length}\r\n{password}\r\n*1\r\n$7\r\nMONITOR\r\n"));
            var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
            Assert.Equal("+OK", await reader.ReadLineAsync());
            Assert.Equal("+OK", await reader.ReadLineAsync());
            return new TargetWrites(client, reader, $"127.0.0.1:{migration.Source.Port}]");
        }

        public async Task AtLeastAsync(long count) =>
            await Eventually.TrueAsync(() => Task.FromResult(Interlocked.Read(ref writes) >= count), $"{count} writes on TARGET");

        /// <summary>Reads up to a marker sent now; returns the distinct keys written on TARGET: created there (SOURCE lacks them) and updated.</summary>
        public async Task<(long Created, long Updated)> StopAsync(Migration migration)
        {
            await migration.TargetDb.StringGetAsync(end);
            await ended.Task.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(unexpected.Count == 0, $"commands the count does not know: {string.Join("; ", unexpected.Take(3))}");
            long created = 0;
            foreach (var key in keys)
            {
                created += await migration.SourceDb.KeyExistsAsync(key) ? 0 : 1;
            }

            return (created, keys.Count - created);
        }

        public async ValueTask DisposeAsync()
        {
            client.Dispose();
            try
            {
                await reading;
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
            }
        }

        // +1700000000.123456 [0 127.0.0.1:50000] "SET" "key" "value"
        private async Task ReadAsync(StreamReader reader)
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                var parts = line.Split('"');
                if (parts.Length < 4 || line.Contains(sourcePeer, StringComparison.Ordinal))
                {
                    continue;
                }

                var (command, key) = (parts[1].ToUpperInvariant(), parts[3]);
                if (key == end)
                {
                    ended.TrySetResult();
                    return;
                }

                // The load's keys (external:pid:loop:...): its writes are SET and INCR, its reads GET; every other command
                // (the SDK's reports and marks, the coordinator's and the test's look) touches no such key.
                if (!key.StartsWith("external:", StringComparison.Ordinal) || command is "GET" or "MGET" or "EXISTS")
                {
                    continue;
                }

                if (command is "SET" or "INCR")
                {
                    keys.Add(key);
                    Interlocked.Increment(ref writes);
                }
                else
                {
                    unexpected.Add(line);
                }
            }
        }
    }
}
