using System.Collections.Concurrent;
using StackExchange.Redis;

namespace RedisHotSwap.Testing;

/// <summary>
/// Async loops writing unique keys (<c>prefix:loop:n</c> = n) at full speed through one handle, remembering every
/// acknowledged write and every error: the load under which a migration must lose nothing and surface nothing.
/// </summary>
public sealed class WriteLoad : IAsyncDisposable
{
    private readonly ConcurrentQueue<(string Key, long Value)> acknowledged = new();
    private readonly ConcurrentQueue<Exception> errors = new();
    private readonly CancellationTokenSource stop = new();
    private readonly Task[] loops;
    private long operations;

    /// <summary>Starts <paramref name="writers"/> writing loops and <paramref name="readers"/> reading loops on <paramref name="db"/>.</summary>
    public WriteLoad(IDatabase db, string prefix, int writers, int readers = 0)
    {
        loops = Enumerable.Range(0, writers).Select(i => Task.Run(() => WriteAsync(db, $"{prefix}:{i}")))
            .Concat(Enumerable.Range(0, readers).Select(i => Task.Run(() => ReadAsync(db, $"{prefix}:{i}:0"))))
            .ToArray();
    }

    /// <summary>Operations completed so far.</summary>
    public long Operations => Interlocked.Read(ref operations);

    /// <summary>Every exception a loop saw.</summary>
    public IReadOnlyCollection<Exception> Errors => errors;

    /// <summary>Every write the server acknowledged.</summary>
    public (string Key, long Value)[] Acknowledged => acknowledged.ToArray();

    /// <summary>Returns once <paramref name="more"/> further operations have completed (at most a minute).</summary>
    /// <param name="more">How many operations to wait for.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public async Task MoreAsync(long more, CancellationToken cancellationToken = default)
    {
        var goal = Operations + more;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(1));
        while (Operations < goal)
        {
            await Task.Delay(10, timeout.Token).ConfigureAwait(false);
        }
    }

    /// <summary>Stops every loop and waits for them.</summary>
    public async Task StopAsync()
    {
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(loops).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        stop.Dispose();
    }

    /// <summary>The writes in <paramref name="writes"/> whose value is not on <paramref name="db"/> (read in chunks).</summary>
    /// <param name="db">Where to look.</param>
    /// <param name="writes">Keys and the values they must hold.</param>
    public static async Task<(string Key, long Value)[]> MissingOnAsync(IDatabase db, IEnumerable<(string Key, long Value)> writes)
    {
        var missing = new List<(string, long)>();
        foreach (var chunk in writes.Chunk(1000))
        {
            // One GET per key, pipelined: an MGET would span hash slots on a cluster.
            var values = await Task.WhenAll(chunk.Select(w => db.StringGetAsync(w.Key))).ConfigureAwait(false);
            missing.AddRange(chunk.Where((w, i) => values[i].IsNull || (long)values[i] != w.Value));
        }

        return [.. missing];
    }

    private async Task WriteAsync(IDatabase db, string prefix)
    {
        for (long i = 0; !stop.IsCancellationRequested; i++)
        {
            var key = $"{prefix}:{i}";
            try
            {
                await db.StringSetAsync(key, i).ConfigureAwait(false);
                acknowledged.Enqueue((key, i));
                Interlocked.Increment(ref operations);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                errors.Enqueue(ex);
            }
        }
    }

    private async Task ReadAsync(IDatabase db, string key)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await db.StringGetAsync(key).ConfigureAwait(false);
                Interlocked.Increment(ref operations);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                errors.Enqueue(ex);
            }
        }
    }
}
