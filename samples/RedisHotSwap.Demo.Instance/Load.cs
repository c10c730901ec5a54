using System.Diagnostics;
using StackExchange.Redis;

namespace RedisHotSwap.Demo.Instance;

/// <summary>
/// Writers set unique keys (<c>demo:{name}:{writer}:{n}</c> = n, n counting up) and readers read the seeded data, at
/// full speed; latency and errors are counted per interval. Writer n's acknowledged keys are 0..count-1 less the
/// ones that failed, so the acknowledged set is written compactly: one line per writer.
/// </summary>
internal sealed class Load
{
    private readonly CancellationTokenSource stop = new();
    private readonly Writer[] writers;
    private readonly Task[] loops;
    private readonly Lock gate = new();
    private long operations;
    private long errors;
    private long totalErrors;
    private long latencyTicks;
    private long maxTicks;
    private long maxWriteTicks;

    public Load(IDatabase db, string name, int writers, int readers, int seedKeys)
    {
        this.writers = [.. Enumerable.Range(0, writers).Select(i => new Writer($"demo:{name}:{i}"))];
        loops = [
            .. this.writers.Select(w => Task.Run(() => WriteAsync(db, w))),
            .. Enumerable.Range(0, readers).Select(i => Task.Run(() => ReadAsync(db, seedKeys, i))),
        ];
    }

    public long AcknowledgedCount => writers.Sum(w => w.Next - w.Failed.Count);

    public long ErrorCount => Interlocked.Read(ref totalErrors);

    public string? FirstError { get; private set; }

    /// <summary>What happened since the last call.</summary>
    public (long Operations, long Errors, double MeanMilliseconds, double MaxMilliseconds, double MaxWriteMilliseconds) Take()
    {
        lock (gate)
        {
            var ops = Interlocked.Exchange(ref operations, 0);
            var ticks = Interlocked.Exchange(ref latencyTicks, 0);
            var max = Interlocked.Exchange(ref maxTicks, 0);
            var maxWrite = Interlocked.Exchange(ref maxWriteTicks, 0);
            return (ops, Interlocked.Exchange(ref errors, 0), ops == 0 ? 0 : Milliseconds(ticks) / ops, Milliseconds(max), Milliseconds(maxWrite));
        }
    }

    public async Task StopAsync()
    {
        await stop.CancelAsync();
        await Task.WhenAll(loops);
    }

    /// <summary>One line per writer: its key prefix, how many keys it wrote, and the numbers whose write failed.</summary>
    public IEnumerable<string> Acknowledged() => writers.Select(w => $"{w.Prefix} {w.Next} {string.Join(',', w.Failed)}");

    private static double Milliseconds(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    private static void Max(ref long field, long value)
    {
        var current = Interlocked.Read(ref field);
        while (value > current && Interlocked.CompareExchange(ref field, value, current) != current)
        {
            current = Interlocked.Read(ref field);
        }
    }

    private async Task WriteAsync(IDatabase db, Writer writer)
    {
        while (!stop.IsCancellationRequested)
        {
            var n = writer.Next;
            var started = Stopwatch.GetTimestamp();
            try
            {
                await db.StringSetAsync($"{writer.Prefix}:{n}", n);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                writer.Failed.Add(n);
                Failed(ex);
            }

            var elapsed = Stopwatch.GetTimestamp() - started;
            Max(ref maxWriteTicks, elapsed);
            Completed(elapsed);
            writer.Next = n + 1;
        }
    }

    private async Task ReadAsync(IDatabase db, int seedKeys, int reader)
    {
        var random = new Random(reader);
        while (!stop.IsCancellationRequested)
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                await db.StringGetAsync($"seed:string:{random.Next(Math.Max(1, seedKeys))}");
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                Failed(ex);
            }

            Completed(Stopwatch.GetTimestamp() - started);
        }
    }

    private void Completed(long ticks)
    {
        Interlocked.Increment(ref operations);
        Interlocked.Add(ref latencyTicks, ticks);
        Max(ref maxTicks, ticks);
    }

    private void Failed(Exception ex)
    {
        Interlocked.Increment(ref errors);
        Interlocked.Increment(ref totalErrors);
        FirstError ??= ex.Message;
    }

    private sealed class Writer(string prefix)
    {
        public string Prefix { get; } = prefix;

        public long Next { get; set; }

        public List<long> Failed { get; } = [];
    }
}
