using StackExchange.Redis;
using StackExchange.Redis.Profiling;

namespace RedisHotSwap.Connection;

/// <summary>
/// What the application set on the multiplexer after it was made (exception detail, storm log, profiler, library
/// name suffixes), kept so that every later connection gets it too, not only the one active when it was set.
/// </summary>
/// <remarks>Applying is idempotent, so a setting may be applied to a connection twice when it races a switch.</remarks>
internal sealed class MultiplexerSettings
{
    private readonly Lock gate = new();
    private readonly List<string> suffixes = [];
    private bool? includeDetailInExceptions;
    private int? stormLogThreshold;
    private Func<ProfilingSession?>? profiler;

    public bool IncludeDetailInExceptions
    {
        set
        {
            lock (gate)
            {
                includeDetailInExceptions = value;
            }
        }
    }

    public int StormLogThreshold
    {
        set
        {
            lock (gate)
            {
                stormLogThreshold = value;
            }
        }
    }

    public void RegisterProfiler(Func<ProfilingSession?> provider)
    {
        lock (gate)
        {
            profiler = provider;
        }
    }

    public void AddLibraryNameSuffix(string suffix)
    {
        lock (gate)
        {
            if (!suffixes.Contains(suffix, StringComparer.Ordinal))
            {
                suffixes.Add(suffix);
            }
        }
    }

    public void ApplyTo(IConnectionMultiplexer connection)
    {
        lock (gate)
        {
            if (includeDetailInExceptions is { } detail)
            {
#pragma warning disable CS0618 // the application set it through the obsolete member; it reaches every connection the same way
                SetIncludeDetailInExceptions(connection, detail);
#pragma warning restore CS0618
            }

            if (stormLogThreshold is { } threshold)
            {
                connection.StormLogThreshold = threshold;
            }

            if (profiler is not null)
            {
                connection.RegisterProfiler(profiler);
            }

            foreach (var suffix in suffixes)
            {
                connection.AddLibraryNameSuffix(suffix);
            }
        }
    }

    [Obsolete("Forwards IConnectionMultiplexer.IncludeDetailInExceptions, which is obsolete.")]
    private static void SetIncludeDetailInExceptions(IConnectionMultiplexer connection, bool value) =>
        connection.IncludeDetailInExceptions = value;
}
