using System.Runtime.CompilerServices;
using RedisHotSwap.Connection;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace RedisHotSwap.Tests;

public sealed class MultiplexerSettingsTests
{
    [Fact]
    public async Task StormLogThreshold_SetBeforeSwitches_HoldsOnEveryLaterConnection()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);

        app.Multiplexer.StormLogThreshold = 123;
        await app.Controller.SwitchToAsync(RedisSide.Target);
        Assert.Equal(123, app.Multiplexer.StormLogThreshold);
        await app.Controller.SwitchToAsync(RedisSide.Source);
        Assert.Equal(123, Inner(app).StormLogThreshold);
    }

    [Fact]
    [Obsolete("Checks IConnectionMultiplexer.IncludeDetailInExceptions, which StackExchange.Redis marks obsolete.")]
    public async Task IncludeDetailInExceptions_SetBeforeSwitch_HoldsOnTheNewConnection()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var initial = app.Multiplexer.IncludeDetailInExceptions;

        app.Multiplexer.IncludeDetailInExceptions = !initial;
        await app.Controller.SwitchToAsync(RedisSide.Target);

        Assert.Equal(!initial, Inner(app).IncludeDetailInExceptions);
    }

    [Fact]
    public async Task RegisterProfiler_BeforeSwitch_ProfilesCommandsSentToTarget()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var session = new ProfilingSession();
        app.Multiplexer.RegisterProfiler(() => session);

        await app.Controller.SwitchToAsync(RedisSide.Target);
        await app.Multiplexer.GetDatabase().StringSetAsync("profiled", "1");

        var commands = session.FinishProfiling().ToList();
        Assert.Contains(commands, c => c.Command == "SET" && c.EndPoint.ToString()!.EndsWith($":{migration.Target.Port}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AddLibraryNameSuffix_BeforeSwitch_IsOnTheNewConnection()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);

        app.Multiplexer.AddLibraryNameSuffix("orders");
        await app.Controller.SwitchToAsync(RedisSide.Target);

        // Redis 7.0 has no CLIENT SETINFO to show it; the client keeps the suffixes it sends.
        Assert.Contains("orders", LibraryNameSuffixes(Inner(app)));
    }

    [Fact]
    public async Task ConnectionFailedHandler_AddedBeforeSwitch_HearsTheNewConnection()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var failed = new TaskCompletionSource<ConnectionFailedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        app.Multiplexer.ConnectionFailed += (_, e) => failed.TrySetResult(e);

        await app.Controller.SwitchToAsync(RedisSide.Target);
        await migration.TargetDb.ExecuteAsync("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");

        var args = await failed.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.EndsWith($":{migration.Target.Port}", args.EndPoint!.ToString(), StringComparison.Ordinal);
    }

    private static ConnectionMultiplexer Inner(HotSwapApp app) => ((HotSwapConnectionMultiplexer)app.Multiplexer).ActiveRoute.Multiplexer;

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_libraryNameSuffixHash")]
    private static extern ref HashSet<string> LibraryNameSuffixes(ConnectionMultiplexer multiplexer);
}
