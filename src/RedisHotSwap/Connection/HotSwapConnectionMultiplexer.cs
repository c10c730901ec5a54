using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;
using RedisHotSwap.Configuration;
using RedisHotSwap.Forwarding;
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

    private readonly SemaphoreSlim switchGate = new(1, 1);
    private readonly SwappableDatabase?[] databases = new SwappableDatabase?[CachedDatabases + 1];
    private readonly SwappableSubscriber subscriber;
    private readonly TimeProvider time;
    private volatile HotSwapRoute active;
    private RedisHotSwapOptions options;
    private long generation;
    private int retiring;
    private int disposed;
    private readonly List<IAsyncDisposable> companions = [];

    private HotSwapConnectionMultiplexer(HotSwapRoute initial, RedisHotSwapOptions options, IMeterFactory? meters, ILogger logger, TimeProvider time)
    {
        Owner = this;
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
        CancellationToken cancellationToken = default)
    {
        var logger = loggerFactory.CreateLogger("RedisHotSwap");
        var route = await HotSwapRoute.ConnectAsync(side, options, logger, starting: true, cancellationToken)
            .ConfigureAwait(false);
        return new HotSwapConnectionMultiplexer(route, options, meters, logger, time);
    }

    /// <summary>Hands over what runs beside the connection (trigger, reporter), to be stopped, last first, before it closes.</summary>
    internal void Attach(IAsyncDisposable companion) => companions.Add(companion);

    public Task<bool> SwitchToAsync(RedisSide side, CancellationToken cancellationToken = default) =>
        SwitchToAsync(side, "requested by code", cancellationToken);

    /// <summary>
    /// Moves traffic to <paramref name="side"/>, or reconnects it when its configuration string changed or
    /// <paramref name="reconnect"/> asks (for example to drop writable-replica mode once TARGET was promoted).
    /// </summary>
    internal async Task<bool> SwitchToAsync(RedisSide side, string reason, CancellationToken cancellationToken, bool reconnect = false)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref disposed) != 0, this);
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
            Log.Switching(Logger, old.Side, side, Redaction.Redact(configuration), reason);
            var next = await HotSwapRoute.ConnectAsync(side, current, Logger, starting: false, cancellationToken)
                .ConfigureAwait(false);
            try
            {
                // Warm: the new side listens on every channel before it takes any traffic (at-least-once across the switch).
                await SubscribeAllAsync(next, strict: true).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                await next.DisposeAsync().ConfigureAwait(false);
                throw new RedisHotSwapException(
                    $"{side} ({next.Endpoint}) refused the application's subscriptions: {Redaction.Scrub(ex.Message, configuration)}", ex);
            }

            Adopt(next);

            // Only a retiring connection to the other side matters to the coordinator: it may still write there.
            var leavingSide = old.Side != side;
            if (leavingSide)
            {
                Interlocked.Increment(ref retiring);
            }

            try
            {
                old.MarkRetiring();
                active = next;
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
                await old.RetireAsync(current.DrainTimeout, time, Logger).ConfigureAwait(false);
                if (leavingSide)
                {
                    Interlocked.Decrement(ref retiring);
                    Drained?.Invoke();
                }
            }

            return true;
        }
        finally
        {
            switchGate.Release();
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

        for (var i = companions.Count - 1; i >= 0; i--)
        {
            await companions[i].DisposeAsync().ConfigureAwait(false);
        }

        // A switch under way finishes first, so that no route is left open behind it.
        await switchGate.WaitAsync().ConfigureAwait(false);
        try
        {
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
