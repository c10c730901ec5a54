using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace RedisHotSwap.Connection;

// What the application sets on the multiplexer is kept and given to every route that takes traffic later.
internal sealed partial class HotSwapConnectionMultiplexer
{
    private readonly MultiplexerSettings settings = new();

    [Obsolete("Use ConfigurationOptions.IncludeDetailInExceptions, through RedisHotSwapOptions.ConfigureConnection.")]
    bool IConnectionMultiplexer.IncludeDetailInExceptions
    {
        get => active.Multiplexer.IncludeDetailInExceptions;
        set => Apply(s => s.IncludeDetailInExceptions = value);
    }

    int IConnectionMultiplexer.StormLogThreshold
    {
        get => active.Multiplexer.StormLogThreshold;
        set => Apply(s => s.StormLogThreshold = value);
    }

    void IConnectionMultiplexer.RegisterProfiler(Func<ProfilingSession?> profilingSessionProvider)
    {
        ArgumentNullException.ThrowIfNull(profilingSessionProvider);
        Apply(s => s.RegisterProfiler(profilingSessionProvider));
    }

    void IConnectionMultiplexer.AddLibraryNameSuffix(string suffix) => Apply(s => s.AddLibraryNameSuffix(suffix));

    /// <summary>Makes <paramref name="route"/> the application's: its events reach the application's handlers, it gets the application's settings, and its endpoints stay resolvable after it retires.</summary>
    private void Adopt(HotSwapRoute route)
    {
        AttachEvents(route);
        settings.ApplyTo(route.Multiplexer);
        RememberRoute(route);
    }

    // Records the setting, then applies it to the active route, again if a switch swapped the route meanwhile.
    private void Apply(Action<MultiplexerSettings> change)
    {
        change(settings);
        HotSwapRoute route;
        do
        {
            route = active;
            settings.ApplyTo(route.Multiplexer);
        }
        while (!ReferenceEquals(route, active));
    }
}
