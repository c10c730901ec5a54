using Microsoft.Extensions.Logging;
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
internal sealed class WindowWrites : IAsyncDisposable
{
    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan LastFlushLimit = TimeSpan.FromSeconds(5);

    private readonly IDatabase target;
    private readonly string migrationId;
    private readonly ILogger logger;
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;

    /// <summary>Starts marking; <paramref name="target"/> is database 0 of the connection to TARGET, where the marks go.</summary>
    public WindowWrites(IDatabase target, string migrationId, ILogger logger)
    {
        this.target = target;
        this.migrationId = migrationId;
        this.logger = logger;
        loop = Task.Run(FlushLoopAsync);
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
            try
            {
                await Tracker.HoldAsync(limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Log.WindowMarksProblem(logger, migrationId, "commands still in flight on TARGET after 5 s: their keys may go unmarked");
            }

            // Shipped whether or not the hold came: every mark made so far counts.
            using var shipping = new CancellationTokenSource(LastFlushLimit);
            await Tracker.FlushAsync(target, migrationId).WaitAsync(shipping.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.WindowMarksProblem(logger, migrationId, ex.Message);
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
