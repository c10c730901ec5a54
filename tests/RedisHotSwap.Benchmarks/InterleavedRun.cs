using System.Diagnostics;
using System.Globalization;

namespace RedisHotSwap.Benchmarks;

/// <summary>
/// The same two workloads as <see cref="ThroughputBenchmarks"/>, alternated round by round (raw, swap, swap, raw, ...)
/// so that the machine's drift hits both alike; prints the median throughput ratio and allocated bytes per operation.
/// BenchmarkDotNet runs one method after the other, which on a 2-core machine lets ±10% drift into the ratio.
/// </summary>
internal static class InterleavedRun
{
    public static async Task<int> RunAsync(int rounds)
    {
        Console.WriteLine("| pattern | raw ops/s (median) | hotswap ops/s (median) | throughput ratio (median of rounds) | raw B/op | hotswap B/op |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        foreach (var pattern in new[] { "set", "get", "mixed" })
        {
            var bench = new ThroughputBenchmarks { Pattern = pattern };
            await bench.Setup();
            try
            {
                for (var i = 0; i < 5; i++)
                {
                    await bench.Raw();
                    await bench.HotSwap(); // warm-up: JIT and connection pools
                }

                var raw = new List<Sample>();
                var swap = new List<Sample>();
                for (var round = 0; round < rounds; round++)
                {
                    if (round % 2 == 0)
                    {
                        raw.Add(await MeasureAsync(bench.Raw));
                        swap.Add(await MeasureAsync(bench.HotSwap));
                    }
                    else
                    {
                        swap.Add(await MeasureAsync(bench.HotSwap));
                        raw.Add(await MeasureAsync(bench.Raw));
                    }
                }

                var ratios = raw.Zip(swap, (r, s) => s.OpsPerSecond / r.OpsPerSecond).ToArray();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {pattern} | {Median(raw.Select(s => s.OpsPerSecond)):N0} | {Median(swap.Select(s => s.OpsPerSecond)):N0} | {Median(ratios):0.000} | {Median(raw.Select(s => s.BytesPerOp)):0} | {Median(swap.Select(s => s.BytesPerOp)):0} |"));
            }
            finally
            {
                await bench.Cleanup();
            }
        }

        return 0;
    }

    private static async Task<Sample> MeasureAsync(Func<Task> workload)
    {
        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        var clock = Stopwatch.StartNew();
        await workload();
        clock.Stop();
        var bytes = GC.GetTotalAllocatedBytes(precise: true) - allocated;
        return new Sample(ThroughputBenchmarks.Operations / clock.Elapsed.TotalSeconds, (double)bytes / ThroughputBenchmarks.Operations);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    private readonly record struct Sample(double OpsPerSecond, double BytesPerOp);
}
