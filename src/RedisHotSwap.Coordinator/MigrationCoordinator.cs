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

    /// <summary>Runs every phase that is not done yet; returns once TARGET is promoted and every live instance reports it.</summary>
    public async Task<MigrationStatus> MigrateAsync(CancellationToken cancellationToken = default)
    {
        await ReplicateAsync(cancellationToken).ConfigureAwait(false);
        await CutoverAsync(cancellationToken).ConfigureAwait(false);
        return await PromoteAsync(cancellationToken).ConfigureAwait(false);
    }

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
            Source = Source.Display,
            Target = Target.Display,
            TargetRole = target.Role,
            LinkUp = target.IsReplica && target.LinkUp,
            SyncInProgress = target.IsReplica && target.SyncInProgress,
            SyncReadBytes = target.SyncReadBytes,
            SyncTotalBytes = target.IsReplica && target.SyncInProgress ? target.SyncTotalBytes : -1,
            LagBytes = target.IsReplica ? Math.Max(0, source.MasterOffset - target.ReplicaOffset) : 0,
            SourceKeys = source.Keys,
            TargetKeys = target.Keys,
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
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The halt itself is what matters; the record is a courtesy.
        }

        return new MigrationHaltedException(problem, stateLeft, howToContinue);
    }

    /// <summary>Polls until <paramref name="done"/> says so, reporting status; false on timeout.</summary>
    private async Task<bool> WaitAsync(TimeSpan timeout, Func<Task<(bool Done, string Waiting)>> done, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        while (true)
        {
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

    private Task PublishDirectiveAsync(RedisNode primary, RedisSide side, string reason) =>
        PublishDirectiveAsync(primary, new Directive(side, reason, time.GetUtcNow()).ToJson());

    private async Task PublishDirectiveAsync(RedisNode primary, string directive)
    {
        await primary.Database.StringSetAsync(MigrationKeys.Directive(options.MigrationId), directive).ConfigureAwait(false);
        await primary.Connection.GetSubscriber().PublishAsync(MigrationKeys.DirectiveChannel(options.MigrationId), directive).ConfigureAwait(false);
    }

    /// <summary>
    /// Whether at least the expected number of live instances report <paramref name="side"/> and have finished with
    /// the other one (an instance still draining its old connection may yet write there); otherwise who is missing.
    /// </summary>
    private async Task<(bool Done, string Waiting)> InstancesOnAsync(RedisSide side)
    {
        var live = await instances.LiveAsync().ConfigureAwait(false);
        var stragglers = live.Where(r => r.Side != side || r.Draining).ToArray();
        if (side == RedisSide.Target && live.Count < options.ExpectedInstances)
        {
            return (false, $"{live.Count} of at least {options.ExpectedInstances} instances have reported");
        }

        var where = side == RedisSide.Target ? "SOURCE" : "TARGET";
        return stragglers.Length == 0
            ? (true, $"nothing: all {live.Count} instances report {side.ToString().ToUpperInvariant()}")
            : (false, $"{stragglers.Length} of {live.Count} instances still on {where} or draining it: {Names(stragglers)}");
    }

    private static string Names(IEnumerable<InstanceReport> reports) =>
        string.Join(", ", reports.Select(r => $"{r.InstanceId} ({r.Application}, pid {r.ProcessId}{(r.Draining ? ", draining" : string.Empty)})"));
}
