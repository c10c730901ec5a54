using System.Collections.Concurrent;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

public sealed class LoadTests
{
    private const int Writers = 24;
    private const int Readers = 8;

    [Fact]
    public async Task SwitchAndBack_UnderFullLoad_SurfacesNoErrorAndKeepsEveryAcknowledgedWrite()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var db = app.Multiplexer.GetDatabase();
        var acknowledged = new ConcurrentQueue<(string Key, long Value)>();
        var errors = new ConcurrentQueue<Exception>();
        long operations = 0;
        using var stop = new CancellationTokenSource();

        async Task Writer(int id)
        {
            for (long i = 0; !stop.IsCancellationRequested; i++)
            {
                var key = $"w:{id}:{i}";
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

        async Task Reader(int id)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await db.StringGetAsync($"w:{id}:0");
                    Interlocked.Increment(ref operations);
                }
                catch (Exception ex)
                {
                    errors.Enqueue(ex);
                }
            }
        }

        var loops = Enumerable.Range(0, Writers).Select(i => Task.Run(() => Writer(i)))
            .Concat(Enumerable.Range(0, Readers).Select(i => Task.Run(() => Reader(i))))
            .ToArray();

        await WaitForMoreOperations(() => Interlocked.Read(ref operations), 5_000);
        await app.Controller.SwitchToAsync(RedisSide.Target);
        await WaitForMoreOperations(() => Interlocked.Read(ref operations), 5_000);
        await app.Controller.SwitchToAsync(RedisSide.Source);
        await WaitForMoreOperations(() => Interlocked.Read(ref operations), 5_000);
        await stop.CancelAsync();
        await Task.WhenAll(loops);

        Assert.Empty(errors);
        Assert.Equal(2, app.Controller.Generation);

        // The servers are independent, so each acknowledged key lives on exactly the server that acknowledged it.
        var writes = acknowledged.ToArray();
        var onSource = await ReadAllAsync(migration.SourceDb, writes);
        var onTarget = await ReadAllAsync(migration.TargetDb, writes);
        var missing = writes.Where((w, i) => onSource[i] != w.Value && onTarget[i] != w.Value).Take(5).ToArray();
        Assert.Empty(missing);
        Assert.Contains(onTarget, v => v is not null); // traffic really reached TARGET
        Assert.True(writes.Length > 10_000, $"only {writes.Length} writes were acknowledged");
    }

    private static async Task WaitForMoreOperations(Func<long> operations, long more)
    {
        var goal = operations() + more;
        await Eventually.TrueAsync(() => Task.FromResult(operations() >= goal), $"{more} more operations", TimeSpan.FromSeconds(60));
    }

    private static async Task<long?[]> ReadAllAsync(IDatabase db, (string Key, long Value)[] writes)
    {
        var result = new long?[writes.Length];
        foreach (var chunk in Enumerable.Range(0, writes.Length).Chunk(1000))
        {
            var values = await db.StringGetAsync(chunk.Select(i => (RedisKey)writes[i].Key).ToArray());
            for (var j = 0; j < chunk.Length; j++)
            {
                result[chunk[j]] = values[j].IsNull ? null : (long)values[j];
            }
        }

        return result;
    }
}
