using RedisHotSwap.Connection;
using RedisHotSwap.Protocol;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Copy;

/// <summary>
/// This instance's part in a copy migration (<c>--sync copy</c>): while the directive names a <see cref="CopyStage"/>,
/// a <see cref="WriteTracker"/> sits on the route to SOURCE and its marks are shipped to TARGET (through the warm
/// connection the directive arms) every few milliseconds; under <see cref="CopyStage.Fence"/> new commands are held
/// until the instance switches to TARGET (they run there) or the fence is lifted (they run on SOURCE).
/// </summary>
/// <remarks>
/// Applied by the trigger after every evaluation (one decision at a time). Tracking starts only once every command
/// issued before it was answered, so an instance that reports <see cref="Tracking"/> has no untracked write left in
/// flight. An instance that starts tracking after the backfill began (and after its first command) may have written
/// untracked: it says so with an "unknown" mark, and the coordinator copies every key again.
/// </remarks>
internal sealed class CopyParticipant : IAsyncDisposable
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(5);

    private readonly HotSwapConnectionMultiplexer multiplexer;
    private readonly Action changed;
    private WriteTracker? tracker;
    private HotSwapRoute? tracked;
    private string migrationId = string.Empty;
    private CancellationTokenSource? flushStop;
    private Task flushLoop = Task.CompletedTask;
    private long tracking = -1;
    private long fenced = -1;

    /// <summary>Takes part for <paramref name="multiplexer"/>; <paramref name="changed"/> is told when the report should go out now.</summary>
    public CopyParticipant(HotSwapConnectionMultiplexer multiplexer, Action changed)
    {
        this.multiplexer = multiplexer;
        this.changed = changed;

        // The switch to TARGET lets the held commands go: they run on the route that is active now.
        multiplexer.Switched += (_, _) =>
        {
            if (tracked is { } route && !ReferenceEquals(route, multiplexer.ActiveRoute))
            {
                Volatile.Read(ref tracker)?.Release();
            }
        };
    }

    /// <summary>The epoch under which this instance tracks its writes; null when it does not.</summary>
    public long? Tracking => Interlocked.Read(ref tracking) is >= 0 and var epoch ? epoch : null;

    /// <summary>The epoch of the fence under which this instance holds its writes, all earlier ones marked; null when it does not.</summary>
    public long? Fenced => Interlocked.Read(ref fenced) is >= 0 and var epoch ? epoch : null;

    /// <summary>Follows the standing directive: tracks, fences, lifts the fence, or stops.</summary>
    /// <param name="directive">The directive the routing rule applied; null when none stands.</param>
    /// <param name="starting">True before the application's first command: nothing could have been written untracked.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public async Task ApplyAsync(Directive? directive, bool starting, CancellationToken cancellationToken)
    {
        var active = multiplexer.ActiveRoute;
        if (directive?.Copy is not { } stage || active.Side != RedisSide.Source)
        {
            await StopAsync(directive is null ? "no copy directive stands" : directive.Reason).ConfigureAwait(false);
            return;
        }

        if (tracker is null || !ReferenceEquals(tracked, active))
        {
            await StopAsync("the connection to SOURCE changed").ConfigureAwait(false);
            var next = new WriteTracker();
            migrationId = directive.MigrationId ?? string.Empty;
            tracked = active;
            Volatile.Write(ref tracker, next);
            active.Tracker = next;

            // Every command issued before the tracker was in place is answered before this instance says it tracks.
            await active.BarrierAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            if (stage != CopyStage.Track && !starting)
            {
                next.MarkUnknown();
            }

            flushStop = new CancellationTokenSource();
            flushLoop = Task.Run(() => FlushLoopAsync(next, flushStop.Token), CancellationToken.None);
            Interlocked.Exchange(ref tracking, directive.Epoch);
            Log.CopyTracking(multiplexer.Logger, migrationId, directive.Epoch);
            changed();
        }

        var current = tracker;
        if (stage == CopyStage.Fence)
        {
            if (Interlocked.Read(ref fenced) != directive.Epoch)
            {
                await FenceAsync(current, active, directive.Epoch, cancellationToken).ConfigureAwait(false);
            }
        }
        else if (current.IsHolding || Fenced is not null)
        {
            Interlocked.Exchange(ref fenced, -1);
            current.Release();
            changed();
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync("the application stops").ConfigureAwait(false);

    private async Task FenceAsync(WriteTracker current, HotSwapRoute route, long epoch, CancellationToken cancellationToken)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(DrainLimit);
        try
        {
            await current.HoldAsync(limit.Token).ConfigureAwait(false);
            await route.BarrierAsync().WaitAsync(limit.Token).ConfigureAwait(false);
            await current.FlushAsync(TargetDatabase(), migrationId).WaitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or RedisException or TimeoutException or InvalidOperationException)
        {
            // Not fenced: writes go on on SOURCE; the coordinator, missing this instance's report, lifts the fence and tries later.
            current.Release();
            Log.CopyProblem(multiplexer.Logger, migrationId, $"could not fence ({ex.Message})");
            return;
        }

        Interlocked.Exchange(ref fenced, epoch);
        Log.CopyFenced(multiplexer.Logger, migrationId, epoch);
        changed();
    }

    private IDatabase TargetDatabase() =>
        multiplexer.ArmedRoute is { Side: RedisSide.Target } armed
            ? armed.Multiplexer.GetDatabase()
            : throw new InvalidOperationException("no warm connection to TARGET to ship the marks through");

    private async Task FlushLoopAsync(WriteTracker current, CancellationToken token)
    {
        string? lastProblem = null;
        using var timer = new PeriodicTimer(FlushInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(token).ConfigureAwait(false))
            {
                try
                {
                    await current.FlushAsync(TargetDatabase(), migrationId).ConfigureAwait(false);
                    lastProblem = null;
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or InvalidOperationException or ObjectDisposedException)
                {
                    if (ex.Message != lastProblem)
                    {
                        Log.CopyProblem(multiplexer.Logger, migrationId, $"could not ship write marks to TARGET ({ex.Message})");
                    }

                    lastProblem = ex.Message;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task StopAsync(string reason)
    {
        if (tracker is not { } current)
        {
            return;
        }

        if (tracked is { } route && ReferenceEquals(route.Tracker, current))
        {
            route.Tracker = null;
        }

        current.Release();
        tracker = null;
        tracked = null;
        if (flushStop is { } stop)
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await flushLoop.ConfigureAwait(false);
            stop.Dispose();
            flushStop = null;
        }

        Interlocked.Exchange(ref tracking, -1);
        Interlocked.Exchange(ref fenced, -1);
        Log.CopyStopped(multiplexer.Logger, migrationId, reason);
        changed();
    }
}
