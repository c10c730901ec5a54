using System.Net.Http;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RedisHotSwap.Compatibility.Tests.Infrastructure;
using RedisHotSwap.Tests.Infrastructure;
using RedLockNet.SERedis;
using RedLockNet.SERedis.Configuration;

namespace RedisHotSwap.Compatibility.Tests;

/// <summary>Data Protection, output cache, IDistributedCache and RedLock.net, each handed the swappable multiplexer.</summary>
public sealed class LibraryTests
{
    [Fact]
    public async Task DataProtection_KeyRingInRedis_PayloadProtectedBeforeSwitchUnprotectsOnOtherInstanceAfterIt()
    {
        await using var migration = await Migration.StartAsync(replicate: true); // as in a migration: TARGET has SOURCE's keys
        await using var a = await WebInstance.StartAsync(migration);
        await using var b = await WebInstance.StartAsync(migration);
        var payload = Protector(a).Protect("from a, on SOURCE");
        await migration.ReplicatedAsync();

        await Both.SwitchAsync(RedisSide.Target, a, b);

        // b has not read the key ring yet: it reads it now, from TARGET.
        Assert.Equal("from a, on SOURCE", Protector(b).Unprotect(payload));
        Assert.Equal("from b, on TARGET", Protector(a).Unprotect(Protector(b).Protect("from b, on TARGET")));
        Assert.True(await migration.TargetDb.KeyExistsAsync("DataProtection-Keys"));
        Assert.Empty(a.Errors);
        Assert.Empty(b.Errors);
    }

    [Fact]
    public async Task OutputCacheAndDistributedCache_SharedByTwoInstances_FollowEachSwitch()
    {
        await using var migration = await Migration.StartAsync();
        await using var a = await WebInstance.StartAsync(migration);
        await using var b = await WebInstance.StartAsync(migration);
        using var http = new HttpClient();

        // The output cache keys a page by host and port, so each instance has its own entry; the distributed cache is shared.
        var onSource = await http.GetStringAsync($"{a.Address}/stamp");
        Assert.Equal(onSource, await http.GetStringAsync($"{a.Address}/stamp"));
        await Cache(a).SetStringAsync("basket", "on source");

        await Both.SwitchAsync(RedisSide.Target, a, b);
        var onTarget = await http.GetStringAsync($"{a.Address}/stamp");
        Assert.NotEqual(onSource, onTarget); // TARGET is empty: the page is rendered again and cached there
        Assert.Equal(onTarget, await http.GetStringAsync($"{a.Address}/stamp"));
        Assert.Null(await Cache(b).GetStringAsync("basket"));
        await Cache(b).SetStringAsync("basket", "on target");
        Assert.Equal("on target", await Cache(a).GetStringAsync("basket"));

        await Both.SwitchAsync(RedisSide.Source, a, b);
        Assert.Equal(onSource, await http.GetStringAsync($"{a.Address}/stamp"));
        Assert.Equal("on source", await Cache(b).GetStringAsync("basket"));
        Assert.Empty(a.Errors);
        Assert.Empty(b.Errors);
    }

    [Fact]
    public async Task RedLock_TwoInstancesAcrossSwitches_ExcludeEachOtherOnTheActiveSide()
    {
        await using var migration = await Migration.StartAsync();
        await using var a = await WebInstance.StartAsync(migration);
        await using var b = await WebInstance.StartAsync(migration);
        using var locksA = RedLock(a);
        using var locksB = RedLock(b);
        var expiry = TimeSpan.FromSeconds(30);

        // A loop taking and releasing a lock on a throughout: RedLock reads endpoints and servers before each lock.
        using var stop = new CancellationTokenSource();
        var acquired = 0;
        var churn = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await using var held = await locksA.CreateLockAsync("churn", expiry);
                if (held.IsAcquired)
                {
                    Interlocked.Increment(ref acquired);
                }
            }
        });

        foreach (var side in new[] { RedisSide.Target, RedisSide.Source, RedisSide.Target })
        {
            await Both.SwitchAsync(side, a, b);
            await using (var first = await locksA.CreateLockAsync("orders", expiry))
            {
                Assert.True(first.IsAcquired);
                await using var second = await locksB.CreateLockAsync("orders", expiry);
                Assert.False(second.IsAcquired);
            }

            await using var afterRelease = await locksB.CreateLockAsync("orders", expiry);
            Assert.True(afterRelease.IsAcquired);
        }

        await stop.CancelAsync();
        await churn; // rethrows anything the loop met
        Assert.True(acquired > 0);
        Assert.Empty(a.Errors);
        Assert.Empty(b.Errors);
    }

    private static IDataProtector Protector(WebInstance instance) =>
        instance.Services.GetRequiredService<IDataProtectionProvider>().CreateProtector("compatibility");

    private static IDistributedCache Cache(WebInstance instance) => instance.Services.GetRequiredService<IDistributedCache>();

    private static RedLockFactory RedLock(WebInstance instance) =>
        RedLockFactory.Create([new RedLockMultiplexer(instance.Multiplexer)], instance.Services.GetRequiredService<ILoggerFactory>());
}
