using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>An application instance as a user builds it: configuration, DI, AddRedisHotSwap, resolve IConnectionMultiplexer.</summary>
internal sealed class HotSwapApp : IAsyncDisposable
{
    private HotSwapApp(ServiceProvider services, IConfigurationRoot configuration, FakeLogCollector logs)
    {
        Services = services;
        Configuration = configuration;
        Logs = logs;
        Multiplexer = services.GetRequiredService<IConnectionMultiplexer>();
        Controller = services.GetRequiredService<IHotSwapController>();
    }

    public ServiceProvider Services { get; }

    public IConfigurationRoot Configuration { get; }

    public FakeLogCollector Logs { get; }

    public IConnectionMultiplexer Multiplexer { get; }

    public IHotSwapController Controller { get; }

    /// <summary>The settings of an instance; without a <paramref name="migrationId"/> it writes no reports to the servers.</summary>
    public static Dictionary<string, string?> Settings(Migration migration, bool useTarget = false, string? migrationId = "test")
    {
        var settings = new Dictionary<string, string?>
        {
            ["RedisHotSwap:Source"] = migration.Source.ConfigurationString,
            ["RedisHotSwap:Target"] = migration.TargetConfiguration,
            ["RedisHotSwap:UseTarget"] = useTarget ? "true" : "false",
            ["RedisHotSwap:HeartbeatInterval"] = "00:00:00.200",
            ["RedisHotSwap:HeartbeatTimeToLive"] = "00:00:01",
        };
        if (migrationId is not null)
        {
            settings["RedisHotSwap:MigrationId"] = migrationId;
        }

        return settings;
    }

    public static HotSwapApp Create(Migration migration, Action<IServiceCollection>? services = null, Dictionary<string, string?>? settings = null) =>
        Create(new ConfigurationBuilder().AddInMemoryCollection(settings ?? Settings(migration)).Build(), services);

    public static HotSwapApp Create(IConfigurationRoot configuration, Action<IServiceCollection>? configure = null)
    {
        var collection = new ServiceCollection();
        collection.AddSingleton<IConfiguration>(configuration);
        collection.AddLogging(b => b.AddFakeLogging().SetMinimumLevel(LogLevel.Trace));
        collection.AddRedisHotSwap(configuration.GetSection("RedisHotSwap"));
        configure?.Invoke(collection);
        var provider = collection.BuildServiceProvider();
        return new HotSwapApp(provider, configuration, provider.GetFakeLogCollector());
    }

    /// <summary>A task that completes with the next switch.</summary>
    public Task<RedisSwitchedEventArgs> NextSwitch()
    {
        var tcs = new TaskCompletionSource<RedisSwitchedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        EventHandler<RedisSwitchedEventArgs>? handler = null;
        handler = (_, e) =>
        {
            Controller.Switched -= handler;
            tcs.TrySetResult(e);
        };
        Controller.Switched += handler;
        return tcs.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Flips <c>UseTarget</c> in the in-memory configuration and reloads it, as a configuration service would.</summary>
    public void SetUseTarget(bool value)
    {
        Configuration["RedisHotSwap:UseTarget"] = value ? "true" : "false";
        Configuration.Reload();
    }

    public async ValueTask DisposeAsync() => await Services.DisposeAsync();
}
