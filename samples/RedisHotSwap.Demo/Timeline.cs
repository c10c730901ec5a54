namespace RedisHotSwap.Demo;

/// <summary>When each phase began and each instance was flipped, in seconds from the moment the instances started.</summary>
internal sealed class Timeline
{
    private readonly Lock gate = new();
    private readonly List<(string Name, long UnixMs)> phases = [];
    private readonly Dictionary<int, long> flips = [];
    private long startMs;
    private long? endMs;

    public static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public void Start() => startMs = Now;

    public void End()
    {
        lock (gate)
        {
            endMs = Now;
        }
    }

    /// <summary>Records that <paramref name="phase"/> began now; false if it is the current phase already.</summary>
    public bool Enter(string phase)
    {
        lock (gate)
        {
            if (phases.Count > 0 && phases[^1].Name == phase)
            {
                return false;
            }

            phases.Add((phase, Now));
            return true;
        }
    }

    public void Flipped(int instance)
    {
        lock (gate)
        {
            flips[instance] = Now;
        }
    }

    public double? FlipAt(int instance)
    {
        lock (gate)
        {
            return flips.TryGetValue(instance, out var at) ? Seconds(at) : null;
        }
    }

    public double? Seconds(long? unixMs) => unixMs is { } ms ? Math.Round((ms - startMs) / 1000.0, 2) : null;

    /// <summary>Phase starts, in seconds from the start of the instances (the seeding is before 0).</summary>
    public IReadOnlyList<(string Name, double At)> Marks()
    {
        lock (gate)
        {
            return [.. phases.Select(p => (p.Name, Seconds(p.UnixMs)!.Value))];
        }
    }

    public IReadOnlyList<(int Instance, double At)> FlipMarks()
    {
        lock (gate)
        {
            return [.. flips.OrderBy(f => f.Key).Select(f => (f.Key, Seconds(f.Value)!.Value))];
        }
    }

    /// <summary>Every phase with its duration; the last ends at <see cref="End"/> (or now).</summary>
    public IReadOnlyList<PhaseDuration> Phases()
    {
        lock (gate)
        {
            var end = endMs ?? Now;
            return [.. phases.Select((p, i) => new PhaseDuration(p.Name, Math.Round(((i + 1 < phases.Count ? phases[i + 1].UnixMs : end) - p.UnixMs) / 1000.0, 2)))];
        }
    }
}

/// <summary>One phase of the run and how long it took.</summary>
internal sealed record PhaseDuration(string Name, double Seconds);
