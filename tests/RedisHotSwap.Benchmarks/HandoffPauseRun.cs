using System.Diagnostics;
using System.Globalization;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Benchmarks;

/// <summary>
/// The handoff's pause, measured: three application instances in processes of their own run the checked load
/// (<see cref="ConsistencyLoad"/>: writes, reads of their own writes, counters), while the coordinator hands the
/// primary role back and forth <c>cutovers</c> times. For each cutover (from the start of the arming to the last
/// instance on the new primary) it prints the write hold the coordinator measured, the time from the promotion to
/// the last instance's switch, and the longest any single command of any instance waited; then the distribution,
/// the same longest wait in a quiet stretch before the first cutover, and the load's rate.
/// </summary>
internal static class HandoffPauseRun
{
    public static async Task<int> RunAsync(int cutovers, double? writesPerSecond, bool trace)
    {
        // As the redis-hotswap tool does: no continuation behind the pause waits for the thread pool to add a thread.
        ThreadPool.SetMinThreads(16, 16);
        await using var source = await RedisServerProcess.StartAsync(settings: ["repl-diskless-sync-delay 0"]);
        await using var target = await RedisServerProcess.StartAsync(settings: ["repl-diskless-sync-delay 0"]);
        var settings = new Dictionary<string, string?>
        {
            ["RedisHotSwap:Source"] = source.ConfigurationString,
            ["RedisHotSwap:Target"] = target.ConfigurationString,
            ["RedisHotSwap:MigrationId"] = "benchmark",
            ["RedisHotSwap:HeartbeatInterval"] = "00:00:00.200",
            ["RedisHotSwap:HeartbeatTimeToLive"] = "00:00:01",
        };

        var instances = new List<ExternalInstance>();
        var runs = new List<CheckedRun>();
        var windows = new List<(string Direction, DateTimeOffset From, DateTimeOffset To, double Held, double LastSwitch)>();
        DateTimeOffset quietFrom, quietTo, loadFrom, loadTo;
        try
        {
            for (var i = 0; i < 3; i++)
            {
                instances.Add(await ExternalInstance.StartAsync(settings, load: writesPerSecond is > 0 ? string.Create(CultureInfo.InvariantCulture, $"consistency@{writesPerSecond.Value / 3}") : "consistency"));
            }

            var options = new CoordinatorOptions
            {
                Source = source.ConfigurationString,
                Target = target.ConfigurationString,
                MigrationId = "benchmark",
                ExpectedInstances = 3,
                PollInterval = TimeSpan.FromMilliseconds(50),
                Audit = trace ? line => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {DateTimeOffset.UtcNow:HH:mm:ss.ffffff} {line}")) : null,
            };
            await using var coordinator = await MigrationCoordinator.ConnectAsync(options);
            await coordinator.ReplicateAsync(); // the initial sync is not a cutover
            loadFrom = DateTimeOffset.UtcNow;

            // The instances run a while first, as a service in production has (their code compiled and tuned by the
            // runtime); the coordinator does not: its first cutover runs its code for the first time, as a fresh CLI does.
            await Task.Delay(TimeSpan.FromSeconds(10));

            // A stretch of the same load with no cutover: what the machine itself makes commands wait.
            quietFrom = DateTimeOffset.UtcNow;
            await Task.Delay(TimeSpan.FromSeconds(5));
            quietTo = DateTimeOffset.UtcNow;

            for (var i = 0; i < cutovers; i++)
            {
                var from = DateTimeOffset.UtcNow;
                var status = i % 2 == 0 ? await coordinator.MigrateAsync() : await coordinator.RollbackAsync();
                windows.Add((i % 2 == 0 ? "to TARGET" : "to SOURCE", from, DateTimeOffset.UtcNow, status.HandoffPauseMs ?? double.NaN, status.HandoffLastSwitchMs ?? double.NaN));
            }

            loadTo = DateTimeOffset.UtcNow;
        }
        finally
        {
            foreach (var instance in instances)
            {
                runs.Add(await instance.StopCheckedAsync());
                await instance.DisposeAsync();
            }
        }

        var primary = windows.Count % 2 == 1 ? target : source;
        await using var check = await ConnectionMultiplexer.ConnectAsync(primary.ConfigurationString);
        var missing = 0;
        foreach (var run in runs)
        {
            missing += (await ConsistencyLoad.MissingOnAsync(check.GetDatabase(), run.Expected)).Length;
        }

        double Longest(DateTimeOffset from, DateTimeOffset to) =>
            runs.SelectMany(r => r.Slow).Where(s => s.At >= from && s.At <= to).Select(s => s.Ms).DefaultIfEmpty(0).Max();

        Console.WriteLine($"{"cutover",-8} {"direction",-10} {"writes held (ms)",17} {"last switch (ms)",17} {"longest command wait (ms)",26}");
        var waits = new List<double>();
        for (var i = 0; i < windows.Count; i++)
        {
            var w = windows[i];
            var longest = Longest(w.From, w.To);
            waits.Add(longest);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{i + 1,-8} {w.Direction,-10} {w.Held,17:0.0} {w.LastSwitch,17:0.0} {(longest < 5 ? "< 5" : longest.ToString("0.0", CultureInfo.InvariantCulture)),26}"));
        }

        waits.Sort();
        var median = waits.Count == 0 ? 0 : waits.Count % 2 == 1 ? waits[waits.Count / 2] : (waits[(waits.Count / 2) - 1] + waits[waits.Count / 2]) / 2;
        var writes = runs.Sum(r => r.Writes);
        var seconds = (loadTo - loadFrom).TotalSeconds;
        Console.WriteLine();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"longest command wait per cutover: median {median:0.0} ms, worst {waits.DefaultIfEmpty(0).Max():0.0} ms (commands under 5 ms are not recorded)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"writes held by the coordinator: median {Median(windows.Select(w => w.Held)):0.0} ms; last instance on the new primary after the promotion: median {Median(windows.Select(w => w.LastSwitch)):0.0} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"longest command wait in 5 s of the same load without a cutover: {Longest(quietFrom, quietTo):0.0} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"load: {writes:N0} acknowledged writes from 3 processes in {seconds:0.0} s ({writes / seconds:N0} writes/s, plus a read a round)"));
        Console.WriteLine($"errors {runs.Sum(r => r.Errors)}, violations {runs.Sum(r => r.Violations)}, acknowledged writes or counters missing on the final primary {missing}");
        foreach (var line in runs.SelectMany(r => r.Output.Split('\n')).Where(l => l.StartsWith("error: ", StringComparison.Ordinal) || l.StartsWith("violation: ", StringComparison.Ordinal)).Take(10))
        {
            Console.WriteLine(line);
        }

        if (trace)
        {
            foreach (var run in runs)
            {
                Console.WriteLine(run.Output[run.Output.IndexOf("SDK log", StringComparison.Ordinal)..]);
            }
        }

        return runs.Sum(r => r.Errors + r.Violations) + missing == 0 ? 0 : 1;
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
