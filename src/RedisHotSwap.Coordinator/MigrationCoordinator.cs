using System.ComponentModel.DataAnnotations;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator;

/// <summary>
/// Carries out a migration phase by phase: <see cref="CheckAsync"/>, <see cref="ReplicateAsync"/>,
/// <see cref="CutoverAsync"/>, <see cref="PromoteAsync"/>, or all of them with <see cref="MigrateAsync"/>;
/// <see cref="AbortAsync"/> puts everything back before promotion.
/// </summary>
/// <remarks>
/// Every phase starts by reading the state kept in Redis and skips what is already done, so any of them can be run
/// again after the coordinator was killed. Nothing destructive is repeated: <c>REPLICAOF</c> is only issued while
/// no application has written to TARGET, and promotion only once.
/// </remarks>
public sealed partial class MigrationCoordinator : IAsyncDisposable
{
    private readonly CoordinatorOptions options;
    private readonly IProgress<MigrationStatus>? progress;
    private readonly TimeProvider time;
    private readonly StateStore store;
    private readonly InstanceDirectory instances;

    private MigrationCoordinator(CoordinatorOptions options, RedisNode source, RedisNode target, IProgress<MigrationStatus>? progress, TimeProvider time)
    {
        this.options = options;
        this.progress = progress;
        this.time = time;
        Source = source;
        Target = target;
        store = new StateStore(source, target, options.MigrationId);
        source.Audit = target.Audit = options.Audit is { } audit ? line => audit($"{time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture)} {line}") : null;
        instances = new InstanceDirectory(source, target, options.MigrationId);
    }

    /// <summary>The coordinator's connection to SOURCE.</summary>
    internal RedisNode Source { get; }

    /// <summary>The coordinator's connection to TARGET.</summary>
    internal RedisNode Target { get; }

    /// <summary>Connects to both sides.</summary>
    /// <exception cref="PreflightRefusedException">Bad options, or a side that is unreachable or refuses the credentials.</exception>
    public static async Task<MigrationCoordinator> ConnectAsync(
        CoordinatorOptions options, IProgress<MigrationStatus>? progress = null, TimeProvider? time = null, CancellationToken cancellationToken = default)
    {
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
        {
            throw new PreflightRefusedException(results.Select(r => $"{string.Join(",", r.MemberNames)}: {r.ErrorMessage} Pass it as an option or environment variable.").ToArray());
        }

        var source = await RedisNode.ConnectAsync("SOURCE", options.Source, cancellationToken).ConfigureAwait(false);
        try
        {
            var target = await RedisNode.ConnectAsync("TARGET", options.Target, cancellationToken).ConfigureAwait(false);
            return new MigrationCoordinator(options, source, target, progress, time ?? TimeProvider.System);
        }
        catch
        {
            await source.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Runs every phase that is not done yet, in the cutover mode chosen (<see cref="CoordinatorOptions.Cutover"/>, or
    /// the one the migration already uses); returns once TARGET is the primary and every live instance reports it.
    /// After a <see cref="RollbackAsync"/>, hands the primary role to TARGET again.
    /// </summary>
    public async Task<MigrationStatus> MigrateAsync(CancellationToken cancellationToken = default)
    {
        await using var hold = (await HoldLeaseAsync("migrate").ConfigureAwait(false)).ConfigureAwait(false);
        var state = await ReadStateAsync().ConfigureAwait(false);
        if (UsesCopy(state))
        {
            return await MigrateByCopyAsync(state, cancellationToken).ConfigureAwait(false);
        }

        if (state.Phase == MigrationPhase.New)
        {
            await CheckAsync().ConfigureAwait(false); // a refusal is then the only line printed
        }

        var mode = await ChooseCutoverAsync(state).ConfigureAwait(false);
        if (mode == CutoverMode.Window)
        {
            await ReplicateAsync(cancellationToken).ConfigureAwait(false);
            await CutoverAsync(cancellationToken).ConfigureAwait(false);
            return await PromoteAsync(cancellationToken).ConfigureAwait(false);
        }

        if (state.Phase is MigrationPhase.New or MigrationPhase.Replicating or MigrationPhase.Aborted)
        {
            await ReplicateAsync(cancellationToken).ConfigureAwait(false);
            state = await store.WriteAsync(await ReadStateAsync().ConfigureAwait(false) with { Cutover = CutoverMode.Handoff }, Source).ConfigureAwait(false);
        }

        return await HandOffAsync(state, RedisSide.Target, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Ends the migration for good on the side that is the primary now: the other side stops replicating, refuses
    /// writes (<c>min-replicas-to-write 1</c> with no replica) and is snapshotted; instances stay where they are,
    /// held there by a last directive; the protocol keys expire after <see cref="FinishedKeysLifetime"/>.
    /// </summary>
    public async Task<MigrationStatus> FinishAsync(CancellationToken cancellationToken = default)
    {
        await using var hold = (await HoldLeaseAsync("finish").ConfigureAwait(false)).ConfigureAwait(false);
        var state = await ReadStateAsync().ConfigureAwait(false);
        if (state.Phase is not (MigrationPhase.Promoted or MigrationPhase.RolledBack or MigrationPhase.Finished))
        {
            throw new PreflightRefusedException(
                $"Migration '{options.MigrationId}' is {state.Phase}: finish ends a migration whose handoff or promotion is done; run 'migrate' first (or 'abort' to call it off).");
        }

        // A handoff leaves the old primary a replica of the new one; a window promotion leaves it a primary that refuses
        // writes (the fence), and TARGET the primary: there is no rollback after it.
        var sourceInfo = await Source.InfoAsync().ConfigureAwait(false);
        var (primary, other) = sourceInfo.IsReplica || state.Cutover != CutoverMode.Handoff ? (Target, Source) : (Source, Target);
        var side = primary == Source ? RedisSide.Source : RedisSide.Target;
        if (state.Phase != MigrationPhase.Finished)
        {
            await IssueDirectiveAsync(primary, side, $"migration finished on {Upper(side)}", promoted: true, alsoAnnounceOn: other).ConfigureAwait(false);
            state = await store.WriteAsync(state.Enter(MigrationPhase.Finished, time.GetUtcNow()), primary).ConfigureAwait(false);
        }

        var snapshot = await SnapshotAsync(other, cancellationToken).ConfigureAwait(false);
        if ((await other.InfoAsync().ConfigureAwait(false)).IsReplica)
        {
            // Refusing writes before it stops replicating: there is no moment in which it takes a write.
            await other.ConfigSetAuditedAsync("min-replicas-max-lag", "10", "the finished side refuses writes").ConfigureAwait(false);
            await other.ConfigSetAuditedAsync("min-replicas-to-write", "1", "the finished side refuses writes (it has no replica)").ConfigureAwait(false);
            await other.ExecuteAuditedAsync("the migration is finished: stop replicating", "REPLICAOF", "NO", "ONE").ConfigureAwait(false);
        }

        await RestoreSettingsAsync(state, other, primary).ConfigureAwait(false); // no secret of the other server stays behind
        await other.RewriteConfigAsync("keep the finished side refusing writes across a restart").ConfigureAwait(false);
        await primary.RewriteConfigAsync("keep the primary a primary across a restart").ConfigureAwait(false);

        foreach (var key in new[] { MigrationKeys.State(options.MigrationId), MigrationKeys.Directive(options.MigrationId), MigrationKeys.Epoch(options.MigrationId), MigrationKeys.Instances(options.MigrationId) })
        {
            await primary.Database.KeyExpireAsync(key, FinishedKeysLifetime).ConfigureAwait(false);
        }

        return await StatusAsync($"finished on {Upper(side)}; {snapshot}; the protocol keys expire in {FinishedKeysLifetime.TotalDays:N0} days: deploy configuration naming {primary.Display} before then").ConfigureAwait(false);
    }

    /// <summary>How long the protocol keys live after <see cref="FinishAsync"/>: the directive holds instances on the final side until then.</summary>
    public static TimeSpan FinishedKeysLifetime { get; } = TimeSpan.FromDays(7);

    private async Task<CutoverMode> ChooseCutoverAsync(MigrationState state)
    {
        if (state.Phase is MigrationPhase.Finished)
        {
            throw new PreflightRefusedException($"Migration '{options.MigrationId}' is finished; start a new migration with a new --migration id.");
        }

        var running = state.Cutover ?? state.Phase switch
        {
            MigrationPhase.Cutover or MigrationPhase.Promoting or MigrationPhase.Promoted => CutoverMode.Window,
            MigrationPhase.Arming or MigrationPhase.HandingOff or MigrationPhase.RolledBack => CutoverMode.Handoff,
            _ => (CutoverMode?)null,
        };
        if (running is { } chosen && state.Phase is not (MigrationPhase.New or MigrationPhase.Replicating or MigrationPhase.Aborted))
        {
            if (options.Cutover != CutoverMode.Auto && options.Cutover != chosen)
            {
                var name = chosen.ToString().ToLowerInvariant();
                throw new PreflightRefusedException(
                    $"Migration '{options.MigrationId}' runs the {name} cutover; run it again without --cutover (or with --cutover {name}), or 'abort' it first.");
            }

            return chosen;
        }

        var handoffPossible = (await Source.InfoAsync().ConfigureAwait(false)).Version >= HandoffVersion
            && (await Target.InfoAsync().ConfigureAwait(false)).Version >= HandoffVersion;
        var mode = options.Cutover switch
        {
            CutoverMode.Auto => handoffPossible ? CutoverMode.Handoff : CutoverMode.Window,
            CutoverMode.Handoff when !handoffPossible => throw new PreflightRefusedException(
                $"The handoff cutover needs CLIENT PAUSE WRITE (Redis {HandoffVersion} or later) on both servers; use --cutover window."),
            _ => options.Cutover,
        };
        progress?.Report(await StatusAsync(options.Cutover == CutoverMode.Auto
            ? $"cutover: {mode.ToString().ToLowerInvariant()} ({(handoffPossible ? "both servers run Redis 6.2 or later" : $"a server is older than Redis {HandoffVersion}, which lacks CLIENT PAUSE WRITE")})"
            : $"cutover: {mode.ToString().ToLowerInvariant()}").ConfigureAwait(false));
        return mode;
    }

    private static readonly Version HandoffVersion = new(6, 2);

    /// <summary>One look at both servers, the instances and the state.</summary>
    public async Task<MigrationStatus> StatusAsync(string? waiting = null)
    {
        var state = await store.ReadAsync().ConfigureAwait(false);
        var source = await Source.InfoAsync().ConfigureAwait(false);
        var target = await Target.InfoAsync().ConfigureAwait(false);
        var live = await instances.LiveAsync().ConfigureAwait(false);
        var now = time.GetUtcNow();
        return new MigrationStatus
        {
            MigrationId = options.MigrationId,
            Phase = state.Phase,
            Cutover = state.Cutover,
            Sync = state.Sync ?? (state.Phase == MigrationPhase.New ? null : SyncMode.Replication),
            CopyPauseMs = state.CopyPauseMs,
            CopyVerified = state.CopyVerified,
            HandoffPauseMs = state.HandoffPauseMs,
            HandoffLastSwitchMs = state.HandoffLastSwitchMs,
            Source = Source.Display,
            Target = Target.Display,
            TargetRole = target.Role,
            LinkUp = target.IsReplica && target.LinkUp,
            SyncInProgress = target.IsReplica && target.SyncInProgress,
            SyncReadBytes = target.SyncReadBytes,
            SyncTotalBytes = target.IsReplica && target.SyncInProgress ? target.SyncTotalBytes : -1,
            LagBytes = target.IsReplica ? Math.Max(0, source.MasterOffset - target.ReplicaOffset) : 0,
            SourceKeys = source.Keys,
            TargetKeys = Target.IsCluster ? await Target.KeysAsync().ConfigureAwait(false) : target.Keys,
            Instances = live.Select(r => InstanceStatus.From(r, now)).ToArray(),
            Waiting = waiting ?? state.Halted,
            PhaseDurations = state.Started.ToDictionary(
                p => p.Key,
                p => TimeSpan.FromMilliseconds((state.Ended.TryGetValue(p.Key, out var end) ? end : now.ToUnixTimeMilliseconds()) - p.Value)),
        };
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await ReleaseLeaseAsync().ConfigureAwait(false);
        await Source.DisposeAsync().ConfigureAwait(false);
        await Target.DisposeAsync().ConfigureAwait(false);
    }

    private Task<MigrationState> ReadStateAsync() => store.ReadAsync();

    private Task<MigrationState> EnterAsync(MigrationState state, MigrationPhase phase, RedisNode primary) =>
        store.WriteAsync(state.Enter(phase, time.GetUtcNow()), primary);

    /// <summary>Records why the run stopped, then throws: the next run (and <c>status</c>) shows it.</summary>
    private async Task<Exception> HaltAsync(MigrationState state, RedisNode primary, string problem, string stateLeft, string howToContinue)
    {
        try
        {
            await store.WriteAsync(state with { Halted = problem }, primary).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or MigrationHaltedException)
        {
            // The halt itself is what matters; the record is a courtesy (and not made over another coordinator's).
        }

        return new MigrationHaltedException(problem, stateLeft, howToContinue);
    }

    /// <summary>Polls until <paramref name="done"/> says so, reporting status; false on timeout.</summary>
    private async Task<bool> WaitAsync(TimeSpan timeout, Func<Task<(bool Done, string Waiting)>> done, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        while (true)
        {
            // A wait that reads only one side must still stop once the lease's side stopped answering (a stalled
            // SOURCE): the lease then lapses, and another coordinator may take over.
            lease?.ThrowIfLost();
            var (isDone, waiting) = await done().ConfigureAwait(false);
            if (progress is not null)
            {
                progress.Report(await StatusAsync(waiting).ConfigureAwait(false));
            }

            if (isDone)
            {
                return true;
            }

            if (time.GetElapsedTime(started) >= timeout)
            {
                return false;
            }

            await Task.Delay(options.PollInterval, time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Issues a directive: numbered by a counter on <paramref name="primary"/> (an instance never goes back to a lower
    /// number), stored there (it replicates), and announced on the channel of <paramref name="primary"/> and of
    /// <paramref name="alsoAnnounceOn"/>. An announcement only wakes instances up: they read the key.
    /// </summary>
    private async Task<Directive> IssueDirectiveAsync(
        RedisNode primary, RedisSide side, string reason, bool promoted = false, RedisSide? arm = null, RedisNode? alsoAnnounceOn = null, CopyStage? copy = null, Task<long>? epochTaken = null)
    {
        primary.Guard?.Invoke();
        var epoch = await (epochTaken ?? TakeEpochAsync(primary)).ConfigureAwait(false);
        var directive = new Directive(side, reason, time.GetUtcNow(), promoted, MigrationId: options.MigrationId, Epoch: epoch, Arm: arm, Copy: copy);
        var json = directive.ToJson();
        await primary.Database.StringSetAsync(MigrationKeys.Directive(options.MigrationId), json).ConfigureAwait(false);
        var channel = MigrationKeys.DirectiveChannel(options.MigrationId);

        // PUBLISH is no write: a replica, or a fenced SOURCE, delivers it to the instances still listening there. Both
        // at once: an instance acts on whichever arrives first, and a cutover waits for it.
        await Task.WhenAll(
            primary.Connection.GetSubscriber().PublishAsync(channel, json),
            alsoAnnounceOn?.Connection.GetSubscriber().PublishAsync(channel, json) ?? Task.CompletedTask).ConfigureAwait(false);

        return directive;
    }

    /// <summary>
    /// The next directive's epoch. Taken ahead, beside other work, where a directive is part of a pause: an epoch taken
    /// and never used leaves a gap, and epochs need only grow.
    /// </summary>
    private Task<long> TakeEpochAsync(RedisNode primary) => primary.Database.StringIncrementAsync(MigrationKeys.Epoch(options.MigrationId));

    /// <summary>
    /// Whether at least the expected number of live instances report <paramref name="side"/> and have finished with
    /// the other one (an instance still draining its old connection may yet write there); otherwise who is missing.
    /// </summary>
    private async Task<(bool Done, string Waiting)> InstancesOnAsync(RedisSide side, bool requireExpected = false)
    {
        var live = await instances.LiveAsync().ConfigureAwait(false);
        var stragglers = live.Where(r => r.Problem is not null || r.Side != side || r.Draining).ToArray();
        if ((side == RedisSide.Target || requireExpected) && live.Count < options.ExpectedInstances)
        {
            return (false, $"{live.Count} of at least {options.ExpectedInstances} instances have reported");
        }

        var where = side == RedisSide.Target ? "SOURCE" : "TARGET"; // the other side
        return stragglers.Length == 0
            ? (true, $"nothing: all {live.Count} instances report {side.ToString().ToUpperInvariant()}")
            : (false, $"{stragglers.Length} of {live.Count} instances still on {where} or draining it: {Names(stragglers)}");
    }

    private static string Names(IEnumerable<InstanceReport> reports) =>
        string.Join(", ", reports.Select(r => $"{r.InstanceId} ({r.Application}, pid {r.ProcessId}{(r.Draining ? ", draining" : string.Empty)}{(r.Problem is { } problem ? $", {problem}" : string.Empty)})"));
}
