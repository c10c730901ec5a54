using System.Collections.Concurrent;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RedLockNet.SERedis;
using RedLockNet.SERedis.Configuration;

namespace RedisHotSwap.Compatibility.Tests.Infrastructure;

/// <summary>
/// Every library in use at once across two instances, each in its own loop, recording whatever it throws: chat
/// messages from a client of <c>a</c> to a client of <c>b</c>, cache writes on one read on the other, payloads
/// protected on one and unprotected on the other, locks, and cached pages.
/// </summary>
internal sealed class LibraryWorkload : IAsyncDisposable
{
    private readonly CancellationTokenSource stop = new();
    private readonly List<Task> loops = [];
    private readonly HubConnection sender;
    private readonly HubConnection receiver;
    private readonly RedLockFactory locks;
    private readonly HttpClient http = new();
    private readonly TaskCompletionSource started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int sequence;
    private int disposed;

    private LibraryWorkload(WebInstance a, WebInstance b)
    {
        sender = new HubConnectionBuilder().WithUrl($"{a.Address}/chat").Build();
        receiver = new HubConnectionBuilder().WithUrl($"{b.Address}/chat").Build();
        receiver.On<int>("message", n => Received[n] = true);
        locks = RedLockFactory.Create([new RedLockMultiplexer(a.Multiplexer)], a.Services.GetRequiredService<ILoggerFactory>());
        var cacheA = a.Services.GetRequiredService<IDistributedCache>();
        var cacheB = b.Services.GetRequiredService<IDistributedCache>();
        var protectA = a.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("workload");
        var protectB = b.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("workload");

        Loop("signalr", async i => await sender.InvokeAsync("Send", Interlocked.Increment(ref sequence)));
        Loop("distributed cache", async i =>
        {
            await cacheA.SetStringAsync($"item:{i % 100}", $"{i}");
            _ = await cacheB.GetStringAsync($"item:{i % 100}");
        });
        Loop("data protection", i =>
        {
            if (protectB.Unprotect(protectA.Protect($"{i}")) != $"{i}")
            {
                throw new InvalidOperationException($"payload {i} came back changed");
            }

            return Task.CompletedTask;
        });
        Loop("redlock", async i =>
        {
            await using var held = await locks.CreateLockAsync($"lock:{i % 10}", TimeSpan.FromSeconds(30));
        });
        Loop("output cache", async i => _ = await http.GetStringAsync($"{a.Address}/stamp"));
    }

    public ConcurrentDictionary<int, bool> Received { get; } = new();

    public ConcurrentQueue<string> Failures { get; } = new();

    public int LastSent => Volatile.Read(ref sequence);

    public static async Task<LibraryWorkload> StartAsync(WebInstance a, WebInstance b)
    {
        var workload = new LibraryWorkload(a, b);
        await workload.receiver.StartAsync();
        await workload.sender.StartAsync();
        workload.started.TrySetResult();
        return workload;
    }

    /// <summary>Stops every loop and closes the clients; safe to call twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        started.TrySetResult();
        await stop.CancelAsync();
        await Task.WhenAll(loops);
        await sender.DisposeAsync();
        await receiver.DisposeAsync();
        locks.Dispose();
        http.Dispose();
        stop.Dispose();
    }

    private void Loop(string library, Func<int, Task> step) => loops.Add(Task.Run(async () =>
    {
        await started.Task;
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            try
            {
                await step(i);
            }
            catch (Exception ex)
            {
                Failures.Enqueue($"{library}: {ex.GetType().Name}: {ex.Message}");
            }

            await Task.Delay(2); // pacing: steady use, not a flood
        }
    }));
}
