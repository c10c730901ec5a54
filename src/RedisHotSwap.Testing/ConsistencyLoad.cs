using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using StackExchange.Redis;

namespace RedisHotSwap.Testing;

/// <summary>
/// Async loops that each write, read back and count through one handle, checking as they go what a migration must
/// keep: every write is acknowledged or fails loudly, a loop never reads a value older than one it wrote, and a
/// counter never answers below a value it already acknowledged. Each loop owns its keys, so every check is exact.
/// </summary>
/// <remarks>
/// Loop <c>i</c> of prefix <c>p</c> repeats: <c>SET p:i:w:n n</c> (a unique key per write), <c>SET p:i:last n</c>,
/// <c>GET p:i:last</c> (must be n), <c>INCR p:i:counter</c> (must be one more than the last acknowledged answer).
/// Every command's latency is measured; the slowest ones are kept with the time they ended.
/// </remarks>
public sealed class ConsistencyLoad : IAsyncDisposable
{
    private const double SlowMilliseconds = 5;

    // Per loop: the unique writes acknowledged, as a range with its holes (a list of strings would grow with the run,
    // and its garbage collections would show up as the very command waits a benchmark measures).
    private readonly ConcurrentDictionary<string, UniqueWrites> uniques = new();
    private readonly ConcurrentQueue<string> violations = new();
    private readonly ConcurrentQueue<Exception> errors = new();
    private readonly ConcurrentQueue<(DateTimeOffset At, double Milliseconds)> slow = new();
    private readonly ConcurrentDictionary<string, long> counters = new();
    private readonly ConcurrentDictionary<string, long> lastWritten = new();
    private readonly CancellationTokenSource stop = new();
    private readonly Task[] loops;
    private long writes;
    private long maxTicks;

    /// <summary>Starts <paramref name="loops"/> loops on <paramref name="db"/>, at full speed or paced.</summary>
    /// <param name="db">Where the loops write.</param>
    /// <param name="prefix">What every key of this load starts with.</param>
    /// <param name="loops">How many loops run at once.</param>
    /// <param name="writesPerSecond">
    /// The pace of the whole load (writes, three a round, spread over the loops), as a service that is not saturated
    /// would see it; null for as fast as the machine goes. A loop held back (by a pause) catches up afterwards, as
    /// queued requests would.
    /// </param>
    public ConsistencyLoad(IDatabase db, string prefix, int loops, double? writesPerSecond = null)
    {
        var round = writesPerSecond is > 0 ? TimeSpan.FromSeconds(3.0 * loops / writesPerSecond.Value) : TimeSpan.Zero;
        this.loops = Enumerable.Range(0, loops).Select(i => Task.Run(() => RunAsync(db, $"{prefix}:{i}", round))).ToArray();
    }

    /// <summary>Writes acknowledged so far (three a round: two SETs and an INCR).</summary>
    public long Writes => Interlocked.Read(ref writes);

    /// <summary>Every exception a loop saw.</summary>
    public IReadOnlyCollection<Exception> Errors => errors;

    /// <summary>Every broken promise: a read older than an acknowledged write, a counter that went back.</summary>
    public IReadOnlyCollection<string> Violations => violations;

    /// <summary>The longest any single command took, in milliseconds.</summary>
    public double MaxLatencyMilliseconds => TimeSpan.FromTicks(Interlocked.Read(ref maxTicks)).TotalMilliseconds;

    /// <summary>Every command that took longer than 5 ms, with when it ended.</summary>
    public IReadOnlyCollection<(DateTimeOffset At, double Milliseconds)> Slow => slow;

    /// <summary>Returns once <paramref name="more"/> further writes were acknowledged (at most a minute).</summary>
    /// <param name="more">How many writes to wait for.</param>
    public async Task MoreAsync(long more)
    {
        var goal = Writes + more;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        while (Writes < goal)
        {
            await Task.Delay(10, timeout.Token).ConfigureAwait(false);
        }
    }

    /// <summary>Stops every loop and waits for them.</summary>
    public async Task StopAsync()
    {
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(loops).ConfigureAwait(false);
    }

    /// <summary>
    /// What the server must hold now: each acknowledged unique write, each loop's last value, each counter at
    /// exactly the number of acknowledged increments. One line <c>key=value</c> each.
    /// </summary>
    public IEnumerable<string> Expected() =>
        uniques.SelectMany(p => p.Value.Acknowledged(p.Key)).Concat(lastWritten.Select(p => $"{p.Key}={p.Value}")).Concat(counters.Select(p => $"{p.Key}={p.Value}"));

    /// <summary>The lines of <paramref name="expected"/> (<c>key=value</c>) that <paramref name="db"/> does not hold as given.</summary>
    /// <param name="db">Where to look.</param>
    /// <param name="expected">Lines from <see cref="Expected"/>.</param>
    public static async Task<string[]> MissingOnAsync(IDatabase db, IEnumerable<string> expected)
    {
        var missing = new List<string>();
        foreach (var chunk in expected.Select(l => l.Split('=', 2)).Chunk(1000))
        {
            // One GET per key, pipelined: on a cluster the keys lie in many slots, which one MGET cannot span.
            var values = await Task.WhenAll(chunk.Select(p => db.StringGetAsync(p[0]))).ConfigureAwait(false);
            for (var i = 0; i < chunk.Length; i++)
            {
                if (values[i] != chunk[i][1])
                {
                    missing.Add($"{chunk[i][0]}={chunk[i][1]} (found {(values[i].IsNull ? "nothing" : values[i].ToString())})");
                }
            }
        }

        return [.. missing];
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        stop.Dispose();
    }

    private async Task RunAsync(IDatabase db, string prefix, TimeSpan round)
    {
        var last = $"{prefix}:last";
        var counter = $"{prefix}:counter";
        long count = 0;
        var mine = uniques[prefix] = new UniqueWrites();
        var started = Stopwatch.GetTimestamp();
        for (long n = 1; !stop.IsCancellationRequested; n++)
        {
            var ahead = (round * (n - 1)) - Stopwatch.GetElapsedTime(started);
            if (ahead > TimeSpan.Zero)
            {
                await Task.Delay(ahead, CancellationToken.None).ConfigureAwait(false);
            }

            var uniqueAcknowledged = false;
            try
            {
                var unique = $"{prefix}:w:{n}";
                await Timed(db.StringSetAsync(unique, n)).ConfigureAwait(false);
                (mine.Through, uniqueAcknowledged) = (n, true);
                await Timed(db.StringSetAsync(last, n)).ConfigureAwait(false);
                lastWritten[last] = n;
                Interlocked.Add(ref writes, 2);

                var read = await Timed(db.StringGetAsync(last)).ConfigureAwait(false);
                if (read != n)
                {
                    violations.Enqueue($"{last}: read {(read.IsNull ? "nothing" : read.ToString())} after {n} was acknowledged");
                }

                var answer = await Timed(db.StringIncrementAsync(counter)).ConfigureAwait(false);
                if (answer != count + 1)
                {
                    violations.Enqueue($"{counter}: INCR answered {answer.ToString(CultureInfo.InvariantCulture)} after {count.ToString(CultureInfo.InvariantCulture)} was acknowledged");
                }

                count = answer;
                counters[counter] = count;
                Interlocked.Increment(ref writes);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                errors.Enqueue(ex);
                if (!uniqueAcknowledged)
                {
                    mine.Unacknowledged.Add(n);
                }
            }
        }
    }

    // One loop's unique writes: 1 to Through, but for the ones that failed. Written by its loop alone, read once it stopped.
    private sealed class UniqueWrites
    {
        public long Through { get; set; }

        public HashSet<long> Unacknowledged { get; } = [];

        public IEnumerable<string> Acknowledged(string prefix)
        {
            for (long n = 1; n <= Through; n++)
            {
                if (!Unacknowledged.Contains(n))
                {
                    yield return string.Create(CultureInfo.InvariantCulture, $"{prefix}:w:{n}={n}");
                }
            }
        }
    }

    private async Task<T> Timed<T>(Task<T> command)
    {
        var started = Stopwatch.GetTimestamp();
        var result = await command.ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(started);
        var ticks = elapsed.Ticks;
        long seen;
        while (ticks > (seen = Interlocked.Read(ref maxTicks)) && Interlocked.CompareExchange(ref maxTicks, ticks, seen) != seen)
        {
        }

        if (elapsed.TotalMilliseconds > SlowMilliseconds)
        {
            slow.Enqueue((DateTimeOffset.UtcNow, elapsed.TotalMilliseconds));
        }

        return result;
    }
}
