using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using RedisHotSwap.Configuration;
using RedisHotSwap.Forwarding;
using RedisHotSwap.Instances;
using RedisHotSwap.Protocol;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;
using StackExchange.Redis.Maintenance;

namespace RedisHotSwap.Connection;

/// <summary>
/// The <see cref="IConnectionMultiplexer"/> applications resolve: it holds one live connection (a route) and moves
/// all traffic to a new one on a switch. Members not written here are generated and go to the active route.
/// </summary>
/// <remarks>
/// A switch is warm, then swap, then drain: the new route is connected and answers PING, the application's
/// subscriptions are made on it, one reference swap sends new commands to it, and the old route finishes what it
/// has in flight before it is closed. Commands that raced the swap and could not be sent on the old route are
/// replayed on the new one (see <see cref="Replay"/>).
/// </remarks>
[GenerateForwarding(typeof(IConnectionMultiplexer))]
internal sealed partial class HotSwapConnectionMultiplexer : Forwarder<IConnectionMultiplexer>, IConnectionMultiplexer, IHotSwapController
{
    private const int CachedDatabases = 16;

    // How long the commands in flight on the side a window switch leaves may take before its ordering gives up on
    // them: behind a blocking command (BLPOP) every command sent to the new side would otherwise wait DrainTimeout.
    private static readonly TimeSpan OrderBarrierLimit = TimeSpan.FromSeconds(1);

    private readonly SemaphoreSlim switchGate = new(1, 1);
    private readonly SwappableDatabase?[] databases = new SwappableDatabase?[CachedDatabases + 1];
    private readonly SwappableSubscriber subscriber;
    private readonly TimeProvider time;
    private readonly List<Task> retirements = [];
    private readonly CancellationTokenSource closing = new();
    private volatile HotSwapRoute active;
    private volatile HotSwapRoute? armed;
    private Task? promotionProbe;
    private static int handoffPathPrepared;

    // Completed each time traffic moves: a command a demoted side refused is sent again as soon as that happens, not
    // once the switch has also logged, measured and told its listeners.
    private TaskCompletionSource trafficMoved = NewSignal();
    private RedisHotSwapOptions options;
    private long generation;
    private long armedUnder;
    private long handedOffUnder = -1;
    private long switchedAtTicks;
    private int retiring;
    private int disposed;
    private readonly List<IAsyncDisposable> companions = [];

    private HotSwapConnectionMultiplexer(HotSwapRoute initial, RedisHotSwapOptions options, IMeterFactory? meters, ILogger logger, TimeProvider time, InstanceIdentity identity)
    {
        Owner = this;
        Identity = identity;
        active = initial;
        this.options = options;
        this.time = time;
        Logger = logger;
        Telemetry = new HotSwapTelemetry(meters, () => active.Side);
        Subscriptions = new SubscriptionRegistry(Logger);
        subscriber = new SwappableSubscriber(this, asyncState: null);
        Adopt(initial);
    }

    /// <inheritdoc/>
    public event EventHandler<RedisSwitchedEventArgs>? Switched;

    /// <inheritdoc/>
    public event EventHandler<RedisErrorEventArgs>? ErrorMessage;

    /// <inheritdoc/>
    public event EventHandler<ConnectionFailedEventArgs>? ConnectionFailed;

    /// <inheritdoc/>
    public event EventHandler<InternalErrorEventArgs>? InternalError;

    /// <inheritdoc/>
    public event EventHandler<ConnectionFailedEventArgs>? ConnectionRestored;

    /// <inheritdoc/>
    public event EventHandler<EndPointEventArgs>? ConfigurationChanged;

    /// <inheritdoc/>
    public event EventHandler<EndPointEventArgs>? ConfigurationChangedBroadcast;

    /// <inheritdoc/>
    public event EventHandler<ServerMaintenanceEvent>? ServerMaintenanceEvent;

    /// <inheritdoc/>
    public event EventHandler<HashSlotMovedEventArgs>? HashSlotMoved;

    public RedisSide ActiveSide => active.Side;

    public long Generation => Interlocked.Read(ref generation);

    internal HotSwapRoute ActiveRoute => active;

    /// <summary>The side a warm connection is held to, ready for a handoff; null when none.</summary>
    internal RedisSide? ArmedSide => armed?.Side;

    /// <summary>The warm connection held for a handoff; null when none. It may be closed at any moment.</summary>
    internal HotSwapRoute? ArmedRoute => armed;

    /// <summary>The epoch of the directive this instance is armed under (the latest that asked it to arm); null when not armed.</summary>
    internal long? ArmedUnder => armed is null ? null : Interlocked.Read(ref armedUnder);

    /// <summary>The directive epoch under which this instance moved itself to its armed side (its side was demoted); null when it did not.</summary>
    internal long? HandedOffUnder => Interlocked.Read(ref handedOffUnder) is >= 0 and var epoch ? epoch : null;

    /// <summary>Forgets a handoff made under another migration's directive: epochs are numbered per migration.</summary>
    internal void ForgetHandoff() => Interlocked.Exchange(ref handedOffUnder, -1);

    /// <summary>When the last switch swapped traffic; null before the first.</summary>
    internal DateTimeOffset? SwitchedAt => Interlocked.Read(ref switchedAtTicks) is > 0 and var ticks ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    /// <summary>
    /// Where a switch asked for from code goes: the trigger, so that it passes the one routing rule (a directive
    /// outranks it). Without a trigger the switch is made directly.
    /// </summary>
    internal Func<RedisSide, CancellationToken, Task<bool>>? CodeRequests { get; set; }

    /// <summary>Whether a connection to the side traffic left is still finishing its commands; until it has, that side may yet receive writes.</summary>
    internal bool IsDraining => Volatile.Read(ref retiring) > 0;

    /// <summary>Raised when a retired connection has finished and closed.</summary>
    internal event Action? Drained;

    internal HotSwapTelemetry Telemetry { get; }

    internal ILogger Logger { get; }

    internal SubscriptionRegistry Subscriptions { get; }

    /// <summary>The options switches use (drain timeout, writes to a replica); replaced by the trigger on a valid reload.</summary>
    internal RedisHotSwapOptions Options
    {
        get => Volatile.Read(ref options);
        set => Volatile.Write(ref options, value);
    }

    internal static async Task<HotSwapConnectionMultiplexer> ConnectAsync(
        RedisSide side,
        RedisHotSwapOptions options,
        IMeterFactory? meters,
        ILoggerFactory loggerFactory,
        TimeProvider time,
        InstanceIdentity? identity = null,
        CancellationToken cancellationToken = default)
    {
        identity ??= InstanceIdentity.Create();
        var logger = loggerFactory.CreateLogger("RedisHotSwap");
        var route = await HotSwapRoute.ConnectAsync(side, options, logger, identity.ClientName, starting: true, cancellationToken)
            .ConfigureAwait(false);
        return new HotSwapConnectionMultiplexer(route, options, meters, logger, time, identity);
    }

    /// <summary>Who this instance is: its reports' id, and its connections' name.</summary>
    internal InstanceIdentity Identity { get; }

    /// <summary>Hands over what runs beside the connection (trigger, reporter), to be stopped, last first, before it closes.</summary>
    internal void Attach(IAsyncDisposable companion) => companions.Add(companion);

    public Task<bool> SwitchToAsync(RedisSide side, CancellationToken cancellationToken = default) =>
        CodeRequests?.Invoke(side, cancellationToken) ?? SwitchToAsync(side, "requested by code", cancellationToken);

    /// <summary>
    /// Connects to <paramref name="side"/> ahead of a handoff (warm, PING answered, the application's channels
    /// subscribed) without moving traffic, and from then on treats a demoted answer from the active side as the
    /// signal to move there. Nothing to do when it is armed already or is the active side.
    /// </summary>
    internal async Task ArmAsync(RedisSide side, long epoch, CancellationToken cancellationToken)
    {
        await switchGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
            var configuration = Options.ConfigurationFor(side);
            if (active.Side == side || (armed is { } existing && existing.Side == side && existing.Configuration == configuration))
            {
                Interlocked.Exchange(ref armedUnder, epoch);
                return;
            }

            await DropArmedAsync().ConfigureAwait(false);
            var route = await HotSwapRoute.ConnectAsync(side, Options, Logger, Identity.ClientName, starting: false, cancellationToken, standby: true)
                .ConfigureAwait(false);
            await WarmAsync(route).ConfigureAwait(false);
            try
            {
                // The handoff asks the client to learn the server's role again; done once now, that path is compiled and
                // warm before it runs while the application's writes wait.
                await route.RehearseAsync().ConfigureAwait(false);

                // Before the instance counts (and reports itself) armed: the coordinator pauses writes as soon as every
                // instance is, and compiling then would take the processor from the switch behind the pause.
                await PrepareHandoffPathAsync().ConfigureAwait(false);
            }
            catch
            {
                await route.DisposeAsync(allowCommandsToComplete: false).ConfigureAwait(false);
                throw;
            }

            Adopt(route);
            active.SetHandoffReady(true);

            // Armed means every command still in flight can be sent again: the ones issued before the flag are
            // answered first, and only then is the instance seen (and reported) armed, so none of them can still meet
            // the fence. A connection blocked longer than the bound (a long BLPOP) leaves the instance unarmed.
            try
            {
                await active.BarrierAsync().WaitAsync(Options.DrainTimeout, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                active.SetHandoffReady(false);
                await route.DisposeAsync(allowCommandsToComplete: false).ConfigureAwait(false);
                throw;
            }

            Interlocked.Exchange(ref armedUnder, epoch);
            armed = route;
            Log.Armed(Logger, side, route.Endpoint);
        }
        finally
        {
            switchGate.Release();
        }
    }

    // The handoff's path (the demoted answer, the client learning the server's new role, the switch) runs once per
    // process while the application's writes wait: its first run costs tens of milliseconds in a process that never
    // ran it (the runtime compiles and loads as it goes). Run here ahead of the pause, as far as it can run without
    // moving traffic, the first cutover costs what the others do.
    private async Task PrepareHandoffPathAsync()
    {
        if (Interlocked.Exchange(ref handoffPathPrepared, 1) != 0)
        {
            return;
        }

        var started = time.GetTimestamp();

        // The switch's own code, compiled now rather than behind the pause.
        CodePath.Prepare(typeof(HotSwapConnectionMultiplexer), typeof(HotSwapRoute), typeof(SubscriptionRegistry), typeof(Forwarding.Replay),
            typeof(Forwarding.Forwarder<IDatabase>), typeof(Forwarding.Forwarder<ISubscriber>), typeof(Forwarding.Forwarder<IConnectionMultiplexer>),
            typeof(Triggers.SwitchTrigger), typeof(Triggers.Routing), typeof(Instances.InstanceReporter),
            typeof(Telemetry.HotSwapTelemetry), typeof(Telemetry.Log), typeof(RedisSwitchedEventArgs));

        // What a refused command runs, copied per kind of result: a struct result (bool, long, RedisValue) has code
        // of its own in the replay, in the forwarder's lambda and in the client's result box; and each command's own
        // lambda that sends it again.
        var results = CommandResults.Value;
        CodePath.PrepareFor(typeof(Replay), results);
        CodePath.PrepareFor(typeof(Forwarding.Forwarder<IDatabase>), results);
        CodePath.PrepareInstances(typeof(TaskCompletionSource<>), results);
        CodePath.PrepareInstances(typeof(IDatabase).Assembly.GetType("StackExchange.Redis.TaskResultBox`1"), results);
        CodePath.PrepareNested(typeof(SwappableDatabase), name => name.StartsWith("<>c__DisplayClass", StringComparison.Ordinal));

        // The client's path for an error answer (its event), and the instruments and log events a switch records.
        CodePath.Prepare(typeof(RedisErrorEventArgs), typeof(Counter<long>), typeof(Histogram<double>), typeof(Instrument<long>), typeof(Instrument<double>), typeof(Instrument));
        CodePath.PrepareMethods(typeof(ConnectionMultiplexer), ["OnErrorMessage", "TryCompleteHandler"], typeof(RedisErrorEventArgs));
        LogRehearsal.Run(typeof(Log));

        // ROLE and the client's handshake answered by a primary (the standby's rehearsal met a replica, and the client
        // takes other paths for a primary): the active side is one.
        try
        {
            await active.SaysPrimaryAsync().ConfigureAwait(false);
            await active.Multiplexer.ConfigureAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // Asked again, for real, at the handoff.
        }

        // The first exception a process dispatches through an await is slow (the runtime loads its machinery then).
        try
        {
            await ThrowDemotedAsync().ConfigureAwait(false);
        }
        catch (RedisServerException ex)
        {
            _ = Replay.IsDemoted(ex) && Replay.IsUnsent(ex);
        }

        Log.HandoffPathPrepared(Logger, time.GetElapsedTime(started).TotalMilliseconds);

        static async Task ThrowDemotedAsync()
        {
            await Task.Yield();
            throw new RedisServerException(RedisErrorKind.ReadOnly, CommandFlags.None, "READONLY (prepared ahead of a handoff)");
        }
    }

    // Every struct a command's task can carry (and one reference type, for the code all of them share).
    private static readonly Lazy<Type[]> CommandResults = new(() =>
    [
        .. typeof(IDatabaseAsync).GetMethods().Concat(typeof(IDatabaseAsync).GetInterfaces().SelectMany(i => i.GetMethods()))
            .Select(m => m.ReturnType)
            .Where(t => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Task<>))
            .Select(t => t.GetGenericArguments()[0])
            .Where(t => t.IsValueType)
            .Append(typeof(object))
            .Distinct(),
    ]);

    /// <summary>Closes the warm connection held for a handoff, if any.</summary>
    internal async Task DisarmAsync()
    {
        await switchGate.WaitAsync().ConfigureAwait(false);
        try
        {
            await DropArmedAsync().ConfigureAwait(false);
        }
        finally
        {
            switchGate.Release();
        }
    }

    /// <summary>
    /// Whether a command that failed on <paramref name="route"/> without running (the caller checked
    /// <see cref="Replay.IsUnsent"/>) may be sent again on the active route. On the active route with a handoff
    /// armed, a demoted answer (READONLY, UNBLOCKED, EXECABORT for READONLY) first moves traffic to the armed side.
    /// </summary>
    internal async ValueTask<bool> CanResendAsync(Exception exception, HotSwapRoute route)
    {
        // Demoted: the armed side was promoted first, so it takes traffic now (NOREPLICAS, the seal, comes before the
        // promotion: waited out below).
        if (ReferenceEquals(route, active) && Replay.IsDemoted(exception))
        {
            try
            {
                if (armed is { } standby)
                {
                    var moved = Volatile.Read(ref trafficMoved).Task;
                    var switching = SwitchToAsync(standby.Side, $"{route.Side} answered as a replica: it was demoted by the handoff", CancellationToken.None, handoff: true);
                    if (await Task.WhenAny(switching, moved).ConfigureAwait(false) == switching || switching.IsCompleted)
                    {
                        await switching.ConfigureAwait(false);
                    }
                    else
                    {
                        _ = ObserveAsync(switching, route.Side);
                    }
                }
                else
                {
                    await SwitchUnderWayAsync().ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is RedisHotSwapException or RedisException or TimeoutException or ObjectDisposedException)
            {
                Log.HandoffFailed(Logger, route.Side, ex.Message);
            }
        }

        // Sealed but not yet succeeded: the old primary refuses writes (NOREPLICAS) from the moment the coordinator seals
        // it, while its pause does not hold them (Redis checks the replicas before the pause), until the armed side is
        // promoted a few milliseconds later. The command did not run: it waits for traffic to move, or for the handoff
        // to be called off (the instance disarmed, the seal lifted), and is then sent where traffic is; past DrainTimeout
        // too, since a handoff called off lifts the seal within its pause bound (should it still stand, that refusal surfaces).
        if (ReferenceEquals(route, active) && exception is RedisServerException { Kind: RedisErrorKind.NoReplicas })
        {
            if (armed is not null)
            {
                await AwaitPromotionAsync(route).ConfigureAwait(false);
                Telemetry.CommandRetried();
                return true;
            }

            await SwitchUnderWayAsync().ConfigureAwait(false);
        }

        if (ReferenceEquals(route, active))
        {
            return false;
        }

        Telemetry.CommandRetried();
        return true;
    }

    // A switch under way (the coordinator's directive, say) may have taken the armed route already, so that none is
    // armed any more, and not yet moved traffic: its outcome decides.
    private async Task SwitchUnderWayAsync()
    {
        await switchGate.WaitAsync().ConfigureAwait(false);
        switchGate.Release();
    }

    /// <summary>
    /// Waits, within <see cref="RedisHotSwapOptions.DrainTimeout"/>, until traffic has left <paramref name="route"/> or
    /// no handoff is armed any more; one attempt at a time (a ROLE round trip, then a millisecond's rest) asks the
    /// armed side whether it is the primary now. Then the command (refused, so not run) is sent again on whichever
    /// route is active.
    /// </summary>
    private async Task AwaitPromotionAsync(HotSwapRoute route)
    {
        var until = time.GetTimestamp() + (long)(Options.DrainTimeout.TotalSeconds * time.TimestampFrequency);
        while (ReferenceEquals(route, active) && armed is { } standby && time.GetTimestamp() < until)
        {
            var moved = Volatile.Read(ref trafficMoved).Task;
            var attempt = Volatile.Read(ref promotionProbe);
            if (attempt is null || attempt.IsCompleted)
            {
                attempt = ProbeAsync(standby.Side);
                Volatile.Write(ref promotionProbe, attempt);
            }

            await Task.WhenAny(moved, attempt).ConfigureAwait(false);
        }

        await SwitchUnderWayAsync().ConfigureAwait(false);

        async Task ProbeAsync(RedisSide side)
        {
            try
            {
                await SwitchToAsync(side, $"{route.Side} refused writes (NOREPLICAS): it was sealed by the handoff", CancellationToken.None, handoff: true, sealedOnly: true).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisHotSwapException or RedisException or TimeoutException or ObjectDisposedException)
            {
                // Still a replica: asked again after a moment.
            }

            await Task.Delay(1).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Moves traffic to <paramref name="side"/>, or reconnects it when its configuration string changed or
    /// <paramref name="reconnect"/> asks (for example to drop writable-replica mode once TARGET was promoted). The
    /// warm connection of an armed handoff is used when it is there and its server is now a primary; with
    /// <paramref name="sealedOnly"/> (a move on a sealed answer, which comes before the coordinator has checked the
    /// promoted process) only while that server answers through the connection the instance armed on.
    /// </summary>
    internal async Task<bool> SwitchToAsync(RedisSide side, string reason, CancellationToken cancellationToken, bool reconnect = false, bool handoff = false, bool sealedOnly = false)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
        Task? retirement = null;
        TaskCompletionSource? leftOld = null;
        await switchGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Closed while this call waited for the gate: opening a route now would leak it.
            ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
            var current = Options;
            var configuration = current.ConfigurationFor(side);
            var old = active;
            if (old.Side == side && old.Configuration == configuration && !reconnect)
            {
                return false;
            }

            var started = time.GetTimestamp();
            if (!handoff)
            {
                Log.Switching(Logger, old.Side, side, Redaction.Redact(configuration), reason);
            }

            var next = await TakeArmedAsync(side, configuration, sameProcess: sealedOnly).ConfigureAwait(false);
            var adopted = next is not null; // an armed route was adopted when it was armed
            if (next is null)
            {
                if (handoff)
                {
                    return false; // nothing armed for that side any more: the demoted answer surfaces
                }

                next = await HotSwapRoute.ConnectAsync(side, current, Logger, Identity.ClientName, starting: false, cancellationToken)
                    .ConfigureAwait(false);
            }

            await WarmAsync(next).ConfigureAwait(false);
            if (!adopted)
            {
                Adopt(next);
            }

            // Only a retiring connection to the other side matters to the coordinator: it may still write there.
            var leavingSide = old.Side != side;
            if (leavingSide)
            {
                Interlocked.Increment(ref retiring);
            }

            try
            {
                old.MarkRetiring();
                next.SetHandoffReady(armed is not null);
                if (handoff)
                {
                    Interlocked.Exchange(ref handedOffUnder, Interlocked.Read(ref armedUnder));
                }

                // Onto a writable replica of the side it leaves (the writable window): what this instance wrote there
                // reaches the replica through replication, a moment later (longer right after its initial sync, or
                // while its link is down). Until it has, the new route holds the commands sent to it.
                var hold = leavingSide && next.WritableReplica ? next.Tracker : null;
                var holding = hold?.HoldAsync(CancellationToken.None);
                active = next;
                if (hold is not null)
                {
                    leftOld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _ = OrderAfterAsync(old, next, hold, holding!, current.DrainTimeout, leftOld);
                }

                Interlocked.Exchange(ref trafficMoved, NewSignal()).TrySetResult();
                if (handoff)
                {
                    // Logged once traffic has moved: the commands the demoted side refused are already sent again.
                    Log.Switching(Logger, old.Side, side, Redaction.Redact(configuration), reason);
                }

                Interlocked.Exchange(ref switchedAtTicks, time.GetUtcNow().UtcTicks);
                var count = Interlocked.Increment(ref generation);

                // Channels subscribed while the first pass ran; from here on nothing may stop the old side's retirement.
                await SubscribeAllAsync(next, strict: false).ConfigureAwait(false);
                var elapsed = time.GetElapsedTime(started);
                Telemetry.Switched(side, elapsed);
                Log.Switched(Logger, side, elapsed.TotalMilliseconds);
                RaiseSwitched(new RedisSwitchedEventArgs(old.Side, side, count, elapsed, reason));
            }
            finally
            {
                retirement = Retire(old, leavingSide, current.DrainTimeout, leftOld?.Task);
            }
        }
        finally
        {
            switchGate.Release();
        }

        // The drain runs outside the gate: a command that meets the demoted side meanwhile finds traffic moved
        // without waiting for it. The caller still returns only once the old connection is closed, except for a
        // handoff, whose caller is a command waiting to be sent again.
        if (!handoff)
        {
            await retirement.ConfigureAwait(false);
        }

        return true;
    }

    // Warm: the new side listens on every channel before it takes any traffic (at-least-once across the switch).
    // A side that refuses one of the application's channels is closed, and nothing moves.
    private async Task WarmAsync(HotSwapRoute route)
    {
        try
        {
            await SubscribeAllAsync(route, strict: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            await route.DisposeAsync().ConfigureAwait(false);
            throw new RedisHotSwapException(
                $"{route.Side} ({route.Endpoint}) refused the application's subscriptions: {Redaction.Scrub(ex.Message, route.Configuration)}", ex);
        }
    }

    // Takes the armed route for a switch to its side, once its server is a primary (for a move on a sealed answer, the
    // very process it armed against); null when none fits.
    private async Task<HotSwapRoute?> TakeArmedAsync(RedisSide side, string configuration, bool sameProcess)
    {
        if (armed is not { } candidate || candidate.Side != side)
        {
            return null;
        }

        if (candidate.Configuration != configuration)
        {
            await DropArmedAsync().ConfigureAwait(false);
            return null;
        }

        await candidate.ActivateAsync(sameProcess).ConfigureAwait(false); // throws, keeping it armed, while it is still a replica
        armed = null;
        return candidate;
    }

    private async Task DropArmedAsync()
    {
        if (armed is not { } route)
        {
            return;
        }

        armed = null;
        active.SetHandoffReady(false);
        try
        {
            await route.DisposeAsync(allowCommandsToComplete: false).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.RetireFailed(Logger, route.Side, ex.Message);
        }
    }

    /// <summary>
    /// Releases the commands <paramref name="next"/> holds once its server (a writable replica of <paramref name="old"/>'s)
    /// has processed <paramref name="old"/>'s stream up to every command this instance sent there: once they are all
    /// answered (a barrier), a <c>PUBLISH</c> on <paramref name="old"/> enters the stream behind them, and the replica
    /// delivers it to this instance's subscription only once it has processed what came before. No admin command and
    /// no knowledge of addresses is needed. So the instance never reads there older than it wrote, and a write it made
    /// on the old side never lands on top of a newer one. Past <paramref name="bound"/> (the old side stalled, the
    /// replica's link down) or <see cref="OrderBarrierLimit"/> for the commands in flight, the commands go on all the
    /// same, with a warning. <paramref name="leftOld"/> is completed once <paramref name="old"/> is no longer needed.
    /// </summary>
    private async Task OrderAfterAsync(HotSwapRoute old, HotSwapRoute next, Copy.WriteTracker hold, Task holding, TimeSpan bound, TaskCompletionSource leftOld)
    {
        var channel = RedisChannel.Literal($"__redis-hotswap:order:{Guid.NewGuid():N}");
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var subscriber = next.Multiplexer.GetSubscriber();
        var subscribed = false;
        try
        {
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(closing.Token);
            limit.CancelAfter(bound);
            await holding.WaitAsync(limit.Token).ConfigureAwait(false);
            await subscriber.SubscribeAsync(channel, (_, _) => arrived.TrySetResult()).WaitAsync(limit.Token).ConfigureAwait(false);
            subscribed = true;
            try
            {
                await old.BarrierAsync().WaitAsync(OrderBarrierLimit, limit.Token).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Behind a blocking command (BLPOP) they may wait long: they run on the old side whenever it answers.
                Log.WindowOrderUnsure(Logger, next.Side, old.Side, $"commands sent there were still unanswered after {OrderBarrierLimit.TotalSeconds:N0} s (a blocking command?)");
                return;
            }

            await old.Multiplexer.GetSubscriber().PublishAsync(channel, "ordered", CommandFlags.DemandMaster).WaitAsync(limit.Token).ConfigureAwait(false);
            leftOld.TrySetResult();
            await arrived.Task.WaitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.WindowOrderUnsure(Logger, next.Side, old.Side,
                ex is not OperationCanceledException ? Redaction.Scrub(ex.Message, old.Configuration) : closing.IsCancellationRequested ? "the connection was closed" : $"not within {bound.TotalSeconds:N0} s");
        }
        finally
        {
            leftOld.TrySetResult();
            hold.Release();
            if (subscribed)
            {
                _ = subscriber.UnsubscribeAsync(channel, flags: CommandFlags.FireAndForget);
            }
        }
    }

    private Task Retire(HotSwapRoute old, bool leavingSide, TimeSpan drainTimeout, Task? ordered = null)
    {
        var task = RetireCoreAsync();
        lock (retirements)
        {
            retirements.RemoveAll(t => t.IsCompleted);
            retirements.Add(task);
        }

        return task;

        async Task RetireCoreAsync()
        {
            await Task.Yield();
            try
            {
                if (ordered is not null)
                {
                    await ordered.ConfigureAwait(false); // the switch's ordering publishes on the old side first
                }

                await old.RetireAsync(drainTimeout, time, Logger).ConfigureAwait(false);
            }
            finally
            {
                if (leavingSide)
                {
                    Interlocked.Decrement(ref retiring);
                    Drained?.Invoke();
                }
            }
        }
    }

    /// <summary>Subscribes the active route to <paramref name="channel"/>, following a switch that happens meanwhile.</summary>
    internal Task EnsureSubscribedAsync(RedisChannel channel, CommandFlags flags) =>
        OnActiveRouteAsync(route => route.EnsureSubscribedAsync(channel, Subscriptions, flags));

    /// <summary>
    /// Drops the active route's subscription to <paramref name="channel"/> once no handler wants it. After the
    /// multiplexer is closed there is nothing left to drop: libraries that unsubscribe as they are disposed (SignalR's
    /// backplane) may do so after the container disposed this singleton.
    /// </summary>
    internal Task ReleaseSubscriptionAsync(RedisChannel channel, CommandFlags flags) =>
        Volatile.Read(ref disposed) != 0
            ? Task.CompletedTask
            : OnActiveRouteAsync(route => route.ReleaseAsync(channel, Subscriptions, flags));

    IDatabase IConnectionMultiplexer.GetDatabase(int db, object? asyncState)
    {
        if (asyncState is not null || db < -1 || db >= CachedDatabases)
        {
            return new SwappableDatabase(this, db, asyncState);
        }

        ref var slot = ref databases[db + 1];
        return Volatile.Read(ref slot) ?? Interlocked.CompareExchange(ref slot, new SwappableDatabase(this, db, null), null) ?? slot!;
    }

    ISubscriber IConnectionMultiplexer.GetSubscriber(object? asyncState) =>
        asyncState is null ? subscriber : new SwappableSubscriber(this, asyncState);

    public void Close(bool allowCommandsToComplete = true) => CloseAsync(allowCommandsToComplete).GetAwaiter().GetResult();

    public async Task CloseAsync(bool allowCommandsToComplete = true)
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        await closing.CancelAsync().ConfigureAwait(false); // a switch's ordering stops holding commands
        for (var i = companions.Count - 1; i >= 0; i--)
        {
            await companions[i].DisposeAsync().ConfigureAwait(false);
        }

        // A switch under way finishes first, so that no route is left open behind it.
        await switchGate.WaitAsync().ConfigureAwait(false);
        try
        {
            await DropArmedAsync().ConfigureAwait(false);
            Task[] draining;
            lock (retirements)
            {
                draining = [.. retirements];
            }

            await Task.WhenAll(draining).ConfigureAwait(false);
            await active.DisposeAsync(allowCommandsToComplete).ConfigureAwait(false);
            Telemetry.Dispose();
        }
        finally
        {
            switchGate.Release();
        }
    }

    public void Dispose() => Close();

    public async ValueTask DisposeAsync() => await CloseAsync().ConfigureAwait(false);

    public override string ToString() => $"RedisHotSwap({active.Side}: {active.Endpoint})";

    private protected override IConnectionMultiplexer Open(HotSwapRoute route) => route.Multiplexer;

    // Runs a subscription change on the active route, and again on the next one if a switch swapped it meanwhile.
    private async Task OnActiveRouteAsync(Func<HotSwapRoute, Task> change)
    {
        HotSwapRoute route;
        do
        {
            route = active;
            await change(route).ConfigureAwait(false);
        }
        while (!ReferenceEquals(route, active));
    }

    // Strict (before the swap): a channel the application needs and the new side refuses stops the switch.
    // Otherwise (after the swap, or an optional channel such as the coordinator's directive): logged, not thrown.
    private async Task SubscribeAllAsync(HotSwapRoute route, bool strict)
    {
        foreach (var channel in Subscriptions.Channels)
        {
            try
            {
                await route.EnsureSubscribedAsync(channel, Subscriptions, CommandFlags.None).ConfigureAwait(false);
            }
            catch (Exception ex) when ((ex is RedisException or TimeoutException) && !(strict && !Subscriptions.IsOptional(channel)))
            {
                Log.SubscribeFailed(Logger, channel.ToString(), route.Side, ex.Message);
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    // A handoff's switch whose waiting command went on once traffic moved: its failure is still logged.
    private async Task ObserveAsync(Task<bool> switching, RedisSide from)
    {
        try
        {
            await switching.ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisHotSwapException or RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.HandoffFailed(Logger, from, ex.Message);
        }
    }

    private void RaiseSwitched(RedisSwitchedEventArgs args)
    {
        try
        {
            Switched?.Invoke(this, args);
        }
        catch (Exception ex)
        {
            Log.SwitchedHandlerFailed(Logger, ex);
        }
    }

    // The application subscribes once, to this object; events of a route reach it only while that route is active.
    private void AttachEvents(HotSwapRoute route)
    {
        var m = route.Multiplexer;
        m.ErrorMessage += (_, e) => Raise(ErrorMessage, route, e);
        m.ConnectionFailed += (_, e) => Raise(ConnectionFailed, route, e);
        m.InternalError += (_, e) => Raise(InternalError, route, e);
        m.ConnectionRestored += (_, e) => Raise(ConnectionRestored, route, e);
        m.ConfigurationChanged += (_, e) => Raise(ConfigurationChanged, route, e);
        m.ConfigurationChangedBroadcast += (_, e) => Raise(ConfigurationChangedBroadcast, route, e);
        m.ServerMaintenanceEvent += (_, e) => Raise(ServerMaintenanceEvent, route, e);
        m.HashSlotMoved += (_, e) => Raise(HashSlotMoved, route, e);
    }

    private void Raise<T>(EventHandler<T>? handler, HotSwapRoute route, T args)
    {
        if (ReferenceEquals(route, active) && !route.IsRetiring)
        {
            handler?.Invoke(this, args);
        }
    }
}
