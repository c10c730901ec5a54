using Microsoft.Extensions.Logging;
using RedisHotSwap.Protocol;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Copy;

/// <summary>
/// The writable window (<c>--cutover window</c>): every key this instance writes on TARGET while TARGET is a writable
/// replica is marked by the <see cref="WriteTracker"/> a copy migration uses, and shipped to TARGET's dirty sets, so
/// that <c>abort</c> counts exactly the keys it would discard, updates of keys SOURCE holds included. It lives as long
/// as the connection to TARGET; its last marks are shipped once that connection's commands have finished, before the
/// instance reports that it left TARGET.
/// </summary>
/// <remarks>
/// Marks are shipped every 50 ms, not with each write (that would be a round trip per write), so an instance killed
/// on TARGET takes up to 50 ms of marks with it. That loss cannot be prevented, but it is made visible: the instance
/// names itself in <see cref="MigrationKeys.WindowWriters"/> on TARGET before its first command there, and removes
/// itself only once every mark it made is shipped. Whoever finds it there (<c>abort</c>) knows the marks may be
/// incomplete.
/// </remarks>
internal sealed class WindowWrites : IAsyncDisposable
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan LastFlushLimit = TimeSpan.FromSeconds(5);

    private readonly IDatabase target;
    private readonly string migrationId;
    private readonly string instanceId;
    private readonly ILogger logger;
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;

    private WindowWrites(IDatabase target, string migrationId, string instanceId, ILogger logger)
    {
        this.target = target;
        this.migrationId = migrationId;
        this.instanceId = instanceId;
        this.logger = logger;
        loop = Task.Run(FlushLoopAsync);
    }

    /// <summary>
    /// Starts marking, once this instance is named on TARGET as one that may write there unshipped marks; call it
    /// before the first command on TARGET. <paramref name="target"/> is database 0 of the connection to TARGET.
    /// </summary>
    public static async Task<WindowWrites> StartAsync(IDatabase target, string migrationId, string instanceId, ILogger logger)
    {
        await target.SetAddAsync(MigrationKeys.WindowWriters(migrationId), instanceId).ConfigureAwait(false);
        return new WindowWrites(target, migrationId, instanceId, logger);
    }

    /// <summary>The tracker the route's commands pass.</summary>
    public WriteTracker Tracker { get; } = new();

    /// <summary>Waits for the commands in flight to be marked, ships every mark, and stops.</summary>
    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync().ConfigureAwait(false);
        await loop.ConfigureAwait(false);
        using var limit = new CancellationTokenSource(LastFlushLimit);
        try
        {
            var held = true;
            try
            {
                await Tracker.HoldAsync(limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                held = false;
                Log.WindowMarksProblem(logger, migrationId, "commands still in flight on TARGET after 5 s: their keys may go unmarked, and this instance stays named on TARGET as one whose marks may be missing");
            }

            // Shipped whether or not the hold came: every mark made so far counts.
            using var shipping = new CancellationTokenSource(LastFlushLimit);
            await Tracker.FlushAsync(target, migrationId).WaitAsync(shipping.Token).ConfigureAwait(false);
            if (held)
            {
                // Every mark is shipped (the same ordered connection): only now may this instance say so.
                await target.SetRemoveAsync(MigrationKeys.WindowWriters(migrationId), instanceId).WaitAsync(shipping.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.WindowMarksProblem(logger, migrationId, $"{ex.Message}; this instance stays named on TARGET as one whose marks may be missing");
        }
        finally
        {
            Tracker.Release(); // a command held meanwhile goes on on the route that is active now
            stop.Dispose();
        }
    }

    private async Task FlushLoopAsync()
    {
        string? lastProblem = null;
        using var timer = new PeriodicTimer(FlushInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await Tracker.FlushAsync(target, migrationId).ConfigureAwait(false);
                    lastProblem = null;
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
                {
                    // The marks are kept for the next flush.
                    if (ex.Message != lastProblem)
                    {
                        Log.WindowMarksProblem(logger, migrationId, ex.Message);
                    }

                    lastProblem = ex.Message;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
