using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR.Client;
using RedisHotSwap.Compatibility.Tests.Infrastructure;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Compatibility.Tests;

/// <summary>Microsoft.AspNetCore.SignalR.StackExchangeRedis: the backplane subscribes with queue subscriptions.</summary>
public sealed class SignalRBackplaneTests
{
    [Fact]
    public async Task Backplane_TwoInstancesAcrossRepeatedSwitches_DeliversEveryMessageSentWhileSettled()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var a = await WebInstance.StartAsync(migration);
        await using var b = await WebInstance.StartAsync(migration);
        await using var sender = new HubConnectionBuilder().WithUrl($"{a.Address}/chat").Build();
        await using var receiver = new HubConnectionBuilder().WithUrl($"{b.Address}/chat").Build();
        var received = new ConcurrentDictionary<int, bool>();
        receiver.On<int>("message", n => received[n] = true);
        await sender.StartAsync();
        await receiver.StartAsync();

        var sequence = 0;
        using var stop = new CancellationTokenSource();
        var sending = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await sender.InvokeAsync("Send", Interlocked.Increment(ref sequence));
                await Task.Delay(2); // pacing: a message every few ms, as a chat under load
            }
        });

        // Ranges of messages sent while both instances were on one side and no switch ran.
        var settled = new List<(int From, int To)>();
        var from = 1;
        for (var i = 0; i < 6; i++)
        {
            var settledFrom = from;
            await Eventually.TrueAsync(() => Task.FromResult(received.Keys.Any(n => n >= settledFrom + 20)), $"messages sent after switch {i} to arrive");
            settled.Add((from, Volatile.Read(ref sequence)));
            await Both.SwitchAsync(i % 2 == 0 ? RedisSide.Target : RedisSide.Source, a, b);
            from = Volatile.Read(ref sequence) + 1;
        }

        await Eventually.TrueAsync(() => Task.FromResult(received.Keys.Any(n => n >= from + 20)), "messages sent after the last switch to arrive");
        settled.Add((from, Volatile.Read(ref sequence)));
        await stop.CancelAsync();
        await sending;

        var expected = settled.SelectMany(r => Enumerable.Range(r.From, r.To - r.From + 1)).ToArray();
        await WaitQuietlyAsync(() => expected.All(received.ContainsKey));
        Assert.DoesNotContain(expected, n => !received.ContainsKey(n));
        Assert.Empty(a.Errors);
        Assert.Empty(b.Errors);
    }

    // Waits for the condition, and leaves its checking to the assertions that follow (which name what is missing).
    private static async Task WaitQuietlyAsync(Func<bool> condition)
    {
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(condition()), "the condition", TimeSpan.FromSeconds(10));
        }
        catch (TimeoutException)
        {
        }
    }
}
