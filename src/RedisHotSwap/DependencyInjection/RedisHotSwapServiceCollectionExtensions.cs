using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.FeatureManagement;
using RedisHotSwap;
using RedisHotSwap.Configuration;
using RedisHotSwap.Connection;
using RedisHotSwap.DependencyInjection;
using RedisHotSwap.Instances;
using RedisHotSwap.Triggers;
using StackExchange.Redis;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the swappable <see cref="IConnectionMultiplexer"/>.</summary>
public static class RedisHotSwapServiceCollectionExtensions
{
    /// <summary>The configuration section read by <see cref="AddRedisHotSwap(IServiceCollection, string)"/> by default.</summary>
    public const string DefaultSectionName = "RedisHotSwap";

    /// <summary>
    /// Registers <see cref="IConnectionMultiplexer"/> (and <see cref="IHotSwapController"/>, the same object) bound to
    /// <paramref name="section"/>; a reload of that section takes effect while the application runs.
    /// </summary>
    public static IServiceCollection AddRedisHotSwap(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.AddOptions<RedisHotSwapOptions>().Bind(section);
        services.TryAddSingleton<IOptionsChangeTokenSource<RedisHotSwapOptions>>(new ConfigurationChangeTokenSource<RedisHotSwapOptions>(section));
        return services.AddRedisHotSwapCore();
    }

    /// <summary>
    /// Registers <see cref="IConnectionMultiplexer"/> bound to the configuration section at <paramref name="sectionPath"/>
    /// of the application's <see cref="IConfiguration"/>.
    /// </summary>
    public static IServiceCollection AddRedisHotSwap(this IServiceCollection services, string sectionPath = DefaultSectionName)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<RedisHotSwapOptions>().BindConfiguration(sectionPath);
        return services.AddRedisHotSwapCore();
    }

    /// <summary>Registers <see cref="IConnectionMultiplexer"/> configured in code.</summary>
    public static IServiceCollection AddRedisHotSwap(this IServiceCollection services, Action<RedisHotSwapOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<RedisHotSwapOptions>().Configure(configure);
        return services.AddRedisHotSwapCore();
    }

    private static IServiceCollection AddRedisHotSwapCore(this IServiceCollection services)
    {
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new RedisHotSwapOptionsValidator(sp.GetService<IServiceProviderIsService>()));
        services.TryAddSingleton(Connect);
        services.TryAddSingleton<IConnectionMultiplexer>(sp => sp.GetRequiredService<HotSwapConnectionMultiplexer>());
        services.TryAddSingleton<IHotSwapController>(sp => sp.GetRequiredService<HotSwapConnectionMultiplexer>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, RedisHotSwapStartup>());
        return services;
    }

    // Like ConnectionMultiplexer.Connect in a singleton factory: the first resolution connects, or throws.
    private static HotSwapConnectionMultiplexer Connect(IServiceProvider services)
    {
        var monitor = services.GetRequiredService<IOptionsMonitor<RedisHotSwapOptions>>();
        var validator = services.GetRequiredService<RedisHotSwapOptionsValidator>();
        var features = services.GetService<IFeatureManager>();
        var loggerFactory = services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance;
        var meters = services.GetService<System.Diagnostics.Metrics.IMeterFactory>();
        var time = services.GetRequiredService<TimeProvider>();

        var options = SwitchTrigger.ReadValid(monitor, validator);
        var side = SwitchTrigger.DecideAsync(options, features).GetAwaiter().GetResult();
        var logger = loggerFactory.CreateLogger("RedisHotSwap");

        var identity = InstanceIdentity.Create();

        // Before the first command: an instance that starts after a handoff goes straight to the side directed.
        // Both sides are read: a copy migration keeps its directive on TARGET only.
        var standing = string.IsNullOrWhiteSpace(options.MigrationId)
            ? null
            : InstanceReporter.ReadStandingAsync(options.Source, options.Target, options.MigrationId, identity, logger).GetAwaiter().GetResult();
        side = Routing.Decide(new RoutingInputs(standing, null, side, "configuration", MigrationId: options.MigrationId)).Side;

        var multiplexer = HotSwapConnectionMultiplexer
            .ConnectAsync(side, options, meters, loggerFactory, time, identity)
            .GetAwaiter().GetResult();
        var trigger = new SwitchTrigger(multiplexer, monitor, validator, features, services.GetService<IConfiguration>(), time, multiplexer.Logger);
        multiplexer.Attach(trigger);
        trigger.SetDirective(standing);
        if (!string.IsNullOrWhiteSpace(options.MigrationId))
        {
            var reporter = new InstanceReporter(multiplexer, options.MigrationId, trigger.SetDirective, time);
            var copy = new RedisHotSwap.Copy.CopyParticipant(multiplexer, reporter.Report);
            reporter.Copy = copy;
            trigger.Copy = copy;
            multiplexer.Attach(reporter);
            multiplexer.Attach(copy); // stopped before the reporter (last first): held commands go, the report says so
        }

        trigger.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        return multiplexer;
    }
}
