using System.Collections.Concurrent;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>What is in flight when the handoff fences SOURCE: blocked commands, transactions, scripts, pub/sub.</summary>
public sealed class HandoffInFlightTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Handoff_BlockedCommandsTransactionsScriptsAndPubSub_SurfaceNothingAndLoseNothing()
    {
        const string id = "inflight";
        await using var migration = await Migration.StartAsync();
        await using var producer = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var consumer = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        var db = producer.Multiplexer.GetDatabase();
        var errors = new ConcurrentQueue<Exception>();
        var received = new ConcurrentDictionary<long, bool>();
        await consumer.Multiplexer.GetSubscriber().SubscribeAsync(RedisChannel.Literal("news"), (_, message) => received[(long)message] = true);
        using var stop = new CancellationTokenSource();
        long pushed = 0, popped = 0, transactions = 0, scripts = 0, published = 0, batches = 0;
        Assert.Same(producer.Multiplexer, db.CreateBatch().Multiplexer); // the same object everywhere
        Assert.Same(producer.Multiplexer, db.CreateTransaction().Multiplexer);

        async Task Loop(Func<Task> body)
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    await body();
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    errors.Enqueue(ex);
                }
            }
        }

        var loops = new[]
        {
            // A consumer blocked in BLPOP while SOURCE is demoted is released (UNBLOCKED, having taken nothing) and waits again on TARGET.
            Loop(async () =>
            {
                var item = await consumer.Multiplexer.GetDatabase().ExecuteAsync("BLPOP", "queue", 1);
                if (!item.IsNull)
                {
                    Interlocked.Increment(ref popped);
                }
            }),
            Loop(async () =>
            {
                await db.ListRightPushAsync("queue", "x");
                Interlocked.Increment(ref pushed);
                await Task.Delay(2);
            }),
            Loop(async () =>
            {
                var transaction = db.CreateTransaction();
                _ = transaction.StringIncrementAsync("tx:a");
                _ = transaction.StringIncrementAsync("tx:b");
                if (await transaction.ExecuteAsync())
                {
                    Interlocked.Increment(ref transactions);
                }
            }),
            Loop(async () =>
            {
                var batch = db.CreateBatch();
                var a = batch.StringIncrementAsync("batch:a");
                var b = batch.StringIncrementAsync("batch:b");
                batch.Execute();
                await Task.WhenAll(a, b);
                Interlocked.Increment(ref batches);
            }),
            Loop(async () =>
            {
                await db.ScriptEvaluateAsync("return redis.call('INCR', KEYS[1])", ["script:counter"]);
                Interlocked.Increment(ref scripts);
            }),
            Loop(async () =>
            {
                var n = Interlocked.Increment(ref published);
                await producer.Multiplexer.GetSubscriber().PublishAsync(RedisChannel.Literal("news"), n);
                await Task.Delay(1);
            }),
        };

        var (exit, migrated) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "2");
        Assert.True(exit == 0, migrated);
        var settled = Interlocked.Read(ref published);
        await Eventually.TrueAsync(() => Task.FromResult(Interlocked.Read(ref published) > settled + 200), "messages published after the handoff");
        await stop.CancelAsync();
        await Task.WhenAll(loops);

        var lostDuringFence = Enumerable.Range(1, (int)settled).Count(n => !received.ContainsKey(n));
        output.WriteLine($"pushed {pushed}, popped {popped}, transactions {transactions}, batches {batches}, scripts {scripts}, published {published}, lost before the handoff settled {lostDuringFence}");
        Assert.True(errors.IsEmpty, string.Join("\n", errors.Select(e => e.Message).Distinct()));
        await Eventually.TrueAsync(
            () => Task.FromResult(Enumerable.Range((int)settled + 1, (int)(Interlocked.Read(ref published) - settled)).All(n => received.ContainsKey(n))),
            "every message published after the handoff settled to arrive");
        Assert.Equal(transactions, (long)await migration.TargetDb.StringGetAsync("tx:a"));
        Assert.Equal(transactions, (long)await migration.TargetDb.StringGetAsync("tx:b"));
        Assert.Equal(scripts, (long)await migration.TargetDb.StringGetAsync("script:counter"));
        Assert.Equal(batches, (long)await migration.TargetDb.StringGetAsync("batch:a"));
        Assert.Equal(batches, (long)await migration.TargetDb.StringGetAsync("batch:b"));
        Assert.Equal(pushed, popped + await migration.TargetDb.ListLengthAsync("queue"));
    }
}
