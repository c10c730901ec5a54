using System.Collections.Concurrent;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>Async loops writing unique keys at full speed through one handle, remembering every acknowledged write and every error.</summary>
internal sealed class WriteLoad : IAsyncDisposable
{
    private readonly ConcurrentQueue<(string Key, long Value)> acknowledged = new();
    private readonly ConcurrentQueue<Exception> errors = new();
    private readonly CancellationTokenSource stop = new();
    private readonly Task[] loops;
    private long operations;

    public WriteLoad(IDatabase db, string prefix, int writers, int readers = 0)
    {
        loops = Enumerable.Range(0, writers).Select(i => Task.Run(() => WriteAsync(db, $"{prefix}:{i}")))
            .Concat(Enumerable.Range(0, readers).Select(i => Task.Run(() => ReadAsync(db, $"{prefix}:{i}:0"))))
            .ToArray();
    }

    public long Operations => Interlocked.Read(ref operations);

    public IReadOnlyCollection<Exception> Errors => errors;

    public (string Key, long Value)[] Acknowledged => acknowledged.ToArray();

    /// <summary>Returns once <paramref name="more"/> further operations have completed.</summary>
    public Task MoreAsync(long more)
    {
        var goal = Operations + more;
        return Eventually.TrueAsync(() => Task.FromResult(Operations >= goal), $"{more} more operations", TimeSpan.FromSeconds(60));
    }

    public async Task StopAsync()
    {
        await stop.CancelAsync();
        await Task.WhenAll(loops);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        stop.Dispose();
    }

    /// <summary>The acknowledged writes whose value is not on <paramref name="db"/> (read in chunks).</summary>
    public static async Task<(string Key, long Value)[]> MissingOnAsync(IDatabase db, IEnumerable<(string Key, long Value)> writes)
    {
        var missing = new List<(string, long)>();
        foreach (var chunk in writes.Chunk(1000))
        {
            var values = await db.StringGetAsync(chunk.Select(w => (RedisKey)w.Key).ToArray());
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
                await db.StringSetAsync(key, i);
                acknowledged.Enqueue((key, i));
                Interlocked.Increment(ref operations);
            }
            catch (Exception ex)
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
                await db.StringGetAsync(key);
                Interlocked.Increment(ref operations);
            }
            catch (Exception ex)
            {
                errors.Enqueue(ex);
            }
        }
    }
}
