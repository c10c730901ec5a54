using Microsoft.Extensions.Logging;
using RedisHotSwap.Configuration;
using RedisHotSwap.Protocol;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// One live connection to one side: the multiplexer, the channels it is subscribed to on behalf of the
/// application, and whether it is being retired.
/// </summary>
internal sealed class HotSwapRoute : IAsyncDisposable
{
    // StackExchange.Redis learns a server's role from HELLO and INFO replication, and then refuses to write to a
    // replica whatever its replica-read-only setting. Without those two commands it takes the server for a primary.
    private static readonly CommandMap WritableReplicaCommands = CommandMap.Create(["INFO", "HELLO"], available: false);

    private readonly SemaphoreSlim subscriptionGate = new(1, 1);
    private readonly HashSet<RedisChannel> channels = [];
    private volatile bool retiring;
    private volatile bool mayRecover;
    private volatile bool standby;
    private volatile bool handoffReady;
    private volatile bool disconnected;
    private bool roleUnavailable;
    private long? armedSockets;
    private volatile Copy.WriteTracker? tracker;
    private Copy.WindowWrites? windowWrites;
    private readonly Dictionary<System.Net.EndPoint, IServer> servers;
    private bool subscriptionsClosed;

    private HotSwapRoute(RedisSide side, string configuration, ConnectionMultiplexer multiplexer, bool writableReplica, bool standby)
    {
        Side = side;
        Configuration = configuration;
        Multiplexer = multiplexer;
        WritableReplica = writableReplica;
        this.standby = standby;
        WatchConnection();
        servers = multiplexer.GetServers().ToDictionary(server => server.EndPoint);
    }

    public RedisSide Side { get; }

    /// <summary>The configuration string this route was made from; compared, never shown (it holds the password).</summary>
    public string Configuration { get; }

    public ConnectionMultiplexer Multiplexer { get; }

    /// <summary>Whether the server was a replica when connected, and the connection was made able to write to it.</summary>
    public bool WritableReplica { get; }

    /// <summary>Set once traffic has moved away; commands that still land here and fail unsent are replayed.</summary>
    public bool IsRetiring => retiring;

    /// <summary>
    /// Whether a failed command issued here may be sent again elsewhere: the route is retiring, or it is active while
    /// an armed route waits for a handoff (a demoted answer then moves traffic). Read on every command.
    /// </summary>
    public bool MayRecover => mayRecover;

    /// <summary>
    /// The copy migration's tracker while this route is SOURCE of one: every command passes it (see
    /// <see cref="Copy.WriteTracker"/>); null otherwise. Read on every command.
    /// </summary>
    public Copy.WriteTracker? Tracker
    {
        get => tracker;
        set => tracker = value;
    }

    /// <summary>An armed route: connected and subscribed ahead of a handoff, delivering no message until it takes traffic.</summary>
    public bool IsStandby => standby;

    public string Endpoint => Redaction.Redact(Configuration);

    /// <summary>
    /// Connects to a side and proves it answers before any traffic is sent to it. The side's configuration string is
    /// parsed and then shaped by <see cref="RedisHotSwapOptions.ConfigureConnection"/>, on every connect.
    /// </summary>
    /// <param name="side">The side to connect.</param>
    /// <param name="settings">The options that name the side and say how to connect it.</param>
    /// <param name="logger">Where the connection is logged.</param>
    /// <param name="clientName">The connection's name (<c>CLIENT SETNAME</c>) unless the application set one itself.</param>
    /// <param name="starting">
    /// True for the application's first connection: with <c>abortConnect=false</c> it is then accepted while the server
    /// is down, and the client connects when the server comes back, as StackExchange.Redis does. A switch always
    /// requires an answer.
    /// </param>
    /// <param name="cancellationToken">Stops waiting for the answer.</param>
    /// <param name="standby">
    /// For a route armed ahead of a handoff: it is connected as it is (a read-only replica included), and takes
    /// traffic only once <see cref="ActivateAsync"/> finds it promoted.
    /// </param>
    public static async Task<HotSwapRoute> ConnectAsync(
        RedisSide side,
        RedisHotSwapOptions settings,
        ILogger logger,
        string clientName,
        bool starting,
        CancellationToken cancellationToken,
        bool standby = false)
    {
        var configuration = settings.ConfigurationFor(side);
        var options = ConfigurationOptions.Parse(configuration);
        settings.ConfigureConnection?.Invoke(side, options);
        if (string.IsNullOrEmpty(options.ClientName) || options.ClientName == options.Defaults.ClientName)
        {
            options.ClientName = clientName; // so the coordinator tells this instance from unknown clients
        }
        var allowWritesToReplica = settings.AllowWritesToReplica;

        ConnectionMultiplexer multiplexer;
        if (starting && !options.AbortOnConnectFail)
        {
            multiplexer = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
            if (!multiplexer.IsConnected)
            {
                Log.StartedDisconnected(logger, side, Redaction.Endpoints(configuration));
                return new HotSwapRoute(side, configuration, multiplexer, writableReplica: false, standby: false);
            }
        }
        else
        {
            multiplexer = await ConnectCheckedAsync(side, configuration, options, cancellationToken).ConfigureAwait(false);
        }

        var writableReplica = false;

        // Only a side that is nothing but a replica needs to be made writable; a Sentinel or cluster side shows its
        // replicas beside a primary, and writes go to the primary.
        var connected = multiplexer.GetServers().Where(s => s.IsConnected).ToArray();
        var server = connected.FirstOrDefault();
        if (standby)
        {
            Log.Connected(logger, side, Redaction.Redact(configuration), " ahead of a handoff (armed, no traffic yet)");
            return new HotSwapRoute(side, configuration, multiplexer, writableReplica: false, standby: true);
        }

        if (allowWritesToReplica && server is not null && connected.All(s => s.IsReplica))
        {
            var writable = options.Clone();
            writable.CommandMap = WritableReplicaCommands;
            writable.DefaultVersion = server.Version; // it can no longer ask the server
            await multiplexer.DisposeAsync().ConfigureAwait(false);
            multiplexer = await ConnectCheckedAsync(side, configuration, writable, cancellationToken).ConfigureAwait(false);
            writableReplica = true;

            // Without the role commands the client probes with a write; a replica with replica-read-only yes refuses
            // it, and the client then refuses every write. Moving traffic there would fail the application's writes.
            if (multiplexer.GetServers().Any(s => s.IsReplica))
            {
                await multiplexer.DisposeAsync().ConfigureAwait(false);
                throw new RedisHotSwapException(
                    $"{side} ({Redaction.Redact(configuration)}) is a read-only replica (replica-read-only yes); writes would fail there. Open it for writes first (the coordinator's cutover does), then switch.");
            }
        }

        Log.Connected(logger, side, Redaction.Redact(configuration), writableReplica ? " as a writable replica" : string.Empty);
        var route = new HotSwapRoute(side, configuration, multiplexer, writableReplica, standby: false);
        if (writableReplica && settings.MigrationId is { Length: > 0 } migrationId)
        {
            // The writable window: what this instance writes here is marked, so that an abort counts what it discards;
            // before any command, it names itself on TARGET as an instance whose marks may be missing until shipped.
            try
            {
                route.windowWrites = await Copy.WindowWrites.StartAsync(
                    multiplexer.GetDatabase(0), migrationId, ClientNames.InstanceIdOf(clientName) ?? clientName, logger).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                await multiplexer.DisposeAsync().ConfigureAwait(false);
                throw new RedisHotSwapException(
                    $"{side} ({Redaction.Endpoints(configuration)}) refused this instance's write marks ({Redaction.Scrub(ex.Message, configuration)}); traffic stays where it is.", ex);
            }

            route.tracker = route.windowWrites.Tracker;
        }
        else if (writableReplica)
        {
            // No migration to report to: nothing is marked, but the switch can still hold commands here until this
            // replica has what the instance wrote on the side it left (see HotSwapConnectionMultiplexer.OrderAfterAsync).
            route.tracker = new Copy.WriteTracker(marking: false);
        }

        return route;
    }

    public void MarkRetiring()
    {
        retiring = true;
        mayRecover = true;
    }

    /// <summary>Marks the active route as having an armed route behind it (or no longer).</summary>
    public void SetHandoffReady(bool ready)
    {
        handoffReady = ready;
        mayRecover = ready || retiring || disconnected;
    }

    /// <summary>
    /// Returns once every command issued on this route before the call has been answered: a PING to each connected
    /// server queues behind them on the same ordered connection. Commands issued before <see cref="MayRecover"/>
    /// turned on cannot be sent again; once this returns, none of them is left to meet a demoted server.
    /// </summary>
    public Task BarrierAsync() =>
        Task.WhenAll(Multiplexer.GetServers().Where(s => s.IsConnected).Select(s => s.PingAsync()));

    // While the connection is down, commands wait in the client's backlog: should traffic move meanwhile, the ones that
    // never left it are sent on the new side, so they must be issued able to be sent again (decided when they fail).
    private void WatchConnection()
    {
        Multiplexer.ConnectionFailed += (_, _) =>
        {
            disconnected = true;
            mayRecover = true;
        };
        Multiplexer.ConnectionRestored += (_, _) =>
        {
            disconnected = !Multiplexer.IsConnected;
            mayRecover = handoffReady || retiring || disconnected;
        };
    }

    /// <summary>
    /// Readies a standby route to take traffic: its server must now be a primary (a handoff promoted it); the client
    /// then learns the new role. Throws, leaving the route on standby, when the server is still a replica.
    /// </summary>
    /// <param name="sameProcess">
    /// For a move the instance makes on its own while the old primary is sealed (before any word from the coordinator):
    /// the answers must also come through the very connection the route was armed on, so from the server process it was
    /// armed against. One restarted meanwhile may answer as a primary with less data (or none); only the coordinator,
    /// which checks the promoted process, moves traffic there. (A demoted answer needs no such check: the coordinator
    /// demotes the old primary only once it has checked the promoted process.)
    /// </param>
    public async Task ActivateAsync(bool sameProcess = false)
    {
        if (!standby)
        {
            return;
        }

        if (!await AnswersAsPrimaryAsync(sameProcess).ConfigureAwait(false))
        {
            throw new RedisHotSwapException(sameProcess && armedSockets is not null
                ? $"{Side} ({Endpoint}) is not yet a primary, or answers through another connection than the one armed (it may have restarted); traffic stays where it is until the coordinator says otherwise."
                : $"{Side} ({Endpoint}) is still a replica (or not connected); traffic stays where it is until it is promoted.");
        }

        standby = false;
    }

    /// <summary>
    /// Runs what <see cref="ActivateAsync"/> runs, ahead of the handoff and without taking traffic: the client asks the
    /// server's role again. Its first run in a process is slow; the handoff's is then not. Also notes the connection
    /// the route is armed on (a restarted server is reached through another).
    /// </summary>
    public async Task RehearseAsync()
    {
        // One server (not a Sentinel or cluster configuration): its connection is the one a move of the instance's own
        // must come through; it must be up now and stay so through the rehearsal, or the instance does not arm.
        var single = Multiplexer.GetServers().Length == 1;
        armedSockets = Sockets();
        await SaysPrimaryAsync().ConfigureAwait(false);
        await HandshakeSaysPrimaryAsync().ConfigureAwait(false);
        if (single && (armedSockets is null || Sockets() != armedSockets))
        {
            throw new RedisHotSwapException($"{Side} ({Endpoint}) lost its connection while the instance armed; arming is tried again shortly.");
        }
    }

    /// <summary>
    /// Asked every few milliseconds while a sealed primary refuses writes: <c>ROLE</c>, one light round trip, says
    /// whether the promotion happened; only then is the client's handshake (several commands, a lock) worth running.
    /// True where <c>ROLE</c> cannot tell (several servers, or an ACL user without it): the handshake then decides.
    /// </summary>
    public async Task<bool> SaysPrimaryAsync()
    {
        if (Volatile.Read(ref roleUnavailable) || Multiplexer.GetServers() is not [{ IsConnected: true } server])
        {
            return true;
        }

        return await RoleSaysPrimaryAsync(server).ConfigureAwait(false);
    }

    private async Task<bool> RoleSaysPrimaryAsync(IServer server)
    {
        try
        {
            return (await server.RoleAsync().ConfigureAwait(false)) is Role.Master;
        }
        catch (RedisCommandException)
        {
            Volatile.Write(ref roleUnavailable, true); // taken out of the client's command map
            return true;
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOPERM", StringComparison.Ordinal) || ex.Message.Contains("unknown command", StringComparison.OrdinalIgnoreCase))
        {
            Volatile.Write(ref roleUnavailable, true); // the ACL user may not run it, or it was renamed away
            return true;
        }
        catch (RedisServerException)
        {
            return true; // busy or loading, say: the handshake decides this time
        }
    }

    // The client learned the role when it connected: make it ask again (one handshake, which also tells whether the
    // server is a primary now), or it refuses every write. With sameProcess, the connection must count as many sockets
    // after both answers as when the route was armed: both came through the armed one, and a TCP connection does not
    // outlive its server process (not connected, none can).
    private async Task<bool> AnswersAsPrimaryAsync(bool sameProcess)
    {
        var armedOn = sameProcess ? armedSockets : null;
        if (armedOn is not null && Sockets() != armedOn)
        {
            return false;
        }

        return await SaysPrimaryAsync().ConfigureAwait(false)
            && await HandshakeSaysPrimaryAsync().ConfigureAwait(false)
            && (armedOn is null || Sockets() == armedOn);
    }

    // How many sockets the connection to its one server has used so far (reconnects included); null when not connected
    // to exactly one server.
    private long? Sockets() =>
        Multiplexer.GetServers() is [{ IsConnected: true } server] ? server.GetCounters().Interactive.SocketCount : null;

    private async Task<bool> HandshakeSaysPrimaryAsync()
    {
        await Multiplexer.ConfigureAsync().ConfigureAwait(false);
        var connected = Multiplexer.GetServers().Where(s => s.IsConnected).ToArray();
        return connected.Length > 0 && !connected.All(s => s.IsReplica);
    }

    /// <summary>
    /// The server at <paramref name="endpoint"/> on this connection, or null when it reaches no such endpoint. Once the
    /// connection is closed the client no longer hands servers out; the ones it had when connected are kept for that.
    /// </summary>
    public IServer? ServerAt(System.Net.EndPoint endpoint, object? asyncState)
    {
        try
        {
            return Multiplexer.GetServer(endpoint, asyncState);
        }
        catch (ArgumentException)
        {
            return servers.GetValueOrDefault(endpoint);
        }
    }

    /// <summary>Subscribes this route to <paramref name="channel"/> once, delivering to the registry's handlers.</summary>
    public async Task EnsureSubscribedAsync(RedisChannel channel, SubscriptionRegistry registry, CommandFlags flags)
    {
        await subscriptionGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (subscriptionsClosed || !registry.Contains(channel) || !channels.Add(channel))
            {
                return;
            }

            try
            {
                var handler = registry.HandlerFor(channel);
                await Multiplexer.GetSubscriber().SubscribeAsync(channel, registry.IsOptional(channel) ? handler : Deliver(handler), flags).ConfigureAwait(false);
            }
            catch
            {
                channels.Remove(channel);
                throw;
            }
        }
        finally
        {
            subscriptionGate.Release();
        }
    }

    // A standby route listens already (so the switch loses nothing) but delivers the application's messages only once
    // it takes traffic: while it is a replica, it also receives every message published on the active side, which
    // would arrive twice. The SDK's own channels always deliver: a directive only wakes the instance up.
    private Action<RedisChannel, RedisValue> Deliver(Action<RedisChannel, RedisValue> handler) => (channel, message) =>
    {
        if (!standby)
        {
            handler(channel, message);
        }
    };

    /// <summary>Drops this route's subscription to <paramref name="channel"/> when the registry no longer wants it.</summary>
    public async Task ReleaseAsync(RedisChannel channel, SubscriptionRegistry registry, CommandFlags flags)
    {
        await subscriptionGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (registry.Contains(channel) || !channels.Remove(channel))
            {
                return;
            }

            await Multiplexer.GetSubscriber().UnsubscribeAsync(channel, handler: null, flags).ConfigureAwait(false);
        }
        finally
        {
            subscriptionGate.Release();
        }
    }

    /// <summary>
    /// Takes this route out of service after a swap: drops its subscriptions (nothing stays subscribed on a retired
    /// side), lets the commands in flight finish (up to <paramref name="timeout"/>), then closes. Never throws: the
    /// swap already happened, and a retiring side may be the one that failed.
    /// </summary>
    public async Task RetireAsync(TimeSpan timeout, TimeProvider time, ILogger logger)
    {
        var started = time.GetTimestamp();
        try
        {
            await CloseSubscriptionsAsync().ConfigureAwait(false);
            long outstanding;
            while ((outstanding = Multiplexer.GetCounters().TotalOutstanding) > 0 && time.GetElapsedTime(started) < timeout)
            {
                // Polling, because StackExchange.Redis raises no event when its queues empty; a few ms is well below a drain.
                await Task.Delay(TimeSpan.FromMilliseconds(5), time).ConfigureAwait(false);
            }

            if (outstanding > 0)
            {
                Log.DrainTimedOut(logger, Side, outstanding, timeout);
            }

            await DisposeAsync().ConfigureAwait(false);
            Log.Retired(logger, Side, time.GetElapsedTime(started).TotalMilliseconds);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.RetireFailed(logger, Side, ex.Message);
        }
    }

    private async Task CloseSubscriptionsAsync()
    {
        await subscriptionGate.WaitAsync().ConfigureAwait(false);
        try
        {
            subscriptionsClosed = true;
            if (channels.Count > 0)
            {
                channels.Clear();

                // Fire and forget: closing the connection ends them anyway, and a dead server must not hold the retirement up.
                await Multiplexer.GetSubscriber().UnsubscribeAllAsync(CommandFlags.FireAndForget).ConfigureAwait(false);
            }
        }
        finally
        {
            subscriptionGate.Release();
        }
    }

    public ValueTask DisposeAsync() => DisposeAsync(allowCommandsToComplete: true);

    public async ValueTask DisposeAsync(bool allowCommandsToComplete)
    {
        if (Interlocked.Exchange(ref windowWrites, null) is { } marks)
        {
            await marks.DisposeAsync().ConfigureAwait(false); // while the connection can still ship them
        }

        await Multiplexer.CloseAsync(allowCommandsToComplete).ConfigureAwait(false);
        await Multiplexer.DisposeAsync().ConfigureAwait(false);

        // The subscription gate is left to the collector: a caller that read this route just before it retired may
        // still wait on it, and must find the route closed, not an ObjectDisposedException.
    }

    private static async Task<ConnectionMultiplexer> ConnectCheckedAsync(
        RedisSide side, string configuration, ConfigurationOptions options, CancellationToken cancellationToken)
    {
        // The connect itself is bounded by the configuration's connectTimeout and is never abandoned: a multiplexer
        // that arrived after the caller gave up would otherwise stay open.
        var connecting = ConnectionMultiplexer.ConnectAsync(options);
        ConnectionMultiplexer? multiplexer = null;
        try
        {
            multiplexer = await connecting.ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            await multiplexer.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            return multiplexer;
        }
        catch (Exception ex)
        {
            if (multiplexer is not null)
            {
                await multiplexer.DisposeAsync().ConfigureAwait(false);
            }

            if (ex is not (RedisException or TimeoutException))
            {
                throw;
            }

            // One line: the client's message is several sentences and, with detail on, repeats the configuration.
            var reason = Redaction.Scrub(ex.Message, configuration).Split('\n', 2)[0].Trim();
            throw new RedisHotSwapException(
                options.Ssl
                    ? $"{side} ({Redaction.Endpoints(configuration)}) did not answer over TLS ({reason}); check that it serves TLS on that port (or remove ssl=true), that it is running and that the credentials are right."
                    : $"{side} ({Redaction.Endpoints(configuration)}) did not answer ({reason}); check that it is running and that the credentials are right, or add abortConnect=false to its configuration to start without it.");
        }
    }
}
