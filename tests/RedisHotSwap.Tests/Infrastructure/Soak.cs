using RedisHotSwap.Testing;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>
/// What the soaks share: how many cutovers they run (CI three; <c>REDIS_HOTSWAP_SOAK_CUTOVERS=20</c> the long run, see
/// the README), and the check at the end of the checked load of every instance process.
/// </summary>
internal static class Soak
{
    public static int Cutovers => int.TryParse(Environment.GetEnvironmentVariable("REDIS_HOTSWAP_SOAK_CUTOVERS"), out var n) && n > 0 ? n : 3;

    /// <summary>Three instance processes, each running the checked load (<see cref="ConsistencyLoad"/>) with <paramref name="settings"/>.</summary>
    /// <remarks>Started at once (each takes seconds to start); every one that started is in the list, whatever became of the others.</remarks>
    public static async Task StartInstancesAsync(List<ExternalInstance> instances, IReadOnlyDictionary<string, string?> settings)
    {
        var starting = Enumerable.Range(0, 3).Select(_ => ExternalInstance.StartAsync(settings, load: "consistency")).ToArray();
        try
        {
            await Task.WhenAll(starting);
        }
        finally
        {
            instances.AddRange(starting.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result));
        }
    }

    /// <summary>Stops every instance without a check: after a failure, whose own message is the one that counts.</summary>
    public static async Task DisposeAsync(IEnumerable<ExternalInstance> instances)
    {
        foreach (var instance in instances)
        {
            await instance.DisposeAsync();
        }
    }

    /// <summary>
    /// Stops every instance and checks what each saw: no exception, every acknowledged write and counter on
    /// <paramref name="primary"/>, and (where the cutover promises it) no read older than an acknowledged write.
    /// </summary>
    public static async Task StopAndCheckAsync(List<ExternalInstance> instances, IDatabase primary, ITestOutputHelper output, bool readYourWrites)
    {
        var runs = new List<CheckedRun>();
        try
        {
            foreach (var instance in instances)
            {
                runs.Add(await instance.StopCheckedAsync());
            }
        }
        finally
        {
            await DisposeAsync(instances);
        }

        foreach (var run in runs)
        {
            output.WriteLine($"{run.Writes} writes, {run.Violations} reads across a switch older than a write, max latency {run.MaxLatencyMs} ms, {run.Slow.Length} commands over 5 ms");
            foreach (var (at, ms) in run.Slow.Where(s => s.Ms > 40))
            {
                output.WriteLine($"  slow {at:HH:mm:ss.fff} {ms:0.0} ms");
            }

            Assert.True(run.Errors == 0, run.Output);
            Assert.True(!readYourWrites || run.Violations == 0, run.Output);
            Assert.True(run.Writes > 1_000, run.Output);

            // Counters exact, every write there. How many are missing is said first: a list shortened to its first few
            // lines (each loop's first write) once passed for "the first writes are lost" when every write was.
            var missing = await ConsistencyLoad.MissingOnAsync(primary, run.Expected);
            Assert.True(missing.Length == 0, $"{missing.Length} of {run.Expected.Length} values missing on the primary, first: {string.Join(", ", missing.Take(5))}\n{run.Output}");
        }
    }
}
