using System.Globalization;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Benchmarks;

/// <summary>
/// Copy mode, measured (<c>--copy [keys] [runs]</c>): the backfill's rate for small keys (keys/s) and for large values
/// (MB/s), each on two fresh servers with no instance running; then the cutover pause under the checked load of three
/// instances in processes of their own, over <c>runs</c> migrations: the coordinator's write hold (fence to the last
/// instance on TARGET) and the longest any single command of any instance waited.
/// </summary>
internal static class CopyRun
{
    public static async Task<int> RunAsync(int keys, int runs)
    {
        ThreadPool.SetMinThreads(16, 16);
        var small = await BackfillAsync(keys, valueBytes: 16);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"backfill, {keys:N0} keys of 16 B: {small.Seconds:0.00} s, {keys / small.Seconds:N0} keys/s"));
        const int large = 200;
        var big = await BackfillAsync(large, valueBytes: 1 << 20);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"backfill, {large} keys of 1 MiB: {big.Seconds:0.00} s, {large / big.Seconds:N1} MB/s"));

        var pauses = new List<(double Held, double Longest, double WritesPerSecond)>();
        for (var run = 1; run <= runs; run++)
        {
            var result = await PauseAsync(run);
            pauses.Add(result);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cutover {run}: writes held {result.Held:0.0} ms, longest command wait {result.Longest:0.0} ms, load {result.WritesPerSecond:N0} writes/s"));
        }

        if (pauses.Count > 0)
        {
            var held = pauses.Select(p => p.Held).Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"writes held: median {held[held.Length / 2]:0.0} ms, worst {held[^1]:0.0} ms over {held.Length} cutovers"));
        }

        return 0;
    }

    private static async Task<(double Seconds, long Keys)> BackfillAsync(int count, int valueBytes)
    {
        await using var source = await RedisServerProcess.StartAsync();
        await using var target = await RedisServerProcess.StartAsync();
        await using (var seed = await ConnectionMultiplexer.ConnectAsync(source.ConfigurationString))
        {
            var db = seed.GetDatabase();
            var value = new byte[valueBytes];
            Random.Shared.NextBytes(value);
            foreach (var chunk in Enumerable.Range(0, count).Chunk(10_000))
            {
                await Task.WhenAll(chunk.Select(i => db.StringSetAsync($"k:{i}", value)));
            }
        }

        await using var coordinator = await MigrationCoordinator.ConnectAsync(new CoordinatorOptions
        {
            Source = source.ConfigurationString,
            Target = target.ConfigurationString,
            MigrationId = "benchmark",
            Sync = SyncMode.Copy,
            ExpectedInstances = 0,
            VerifySample = valueBytes > 1024 ? 10 : 1_000, // the backfill is measured; verification reads both sides whole
            PollInterval = TimeSpan.FromMilliseconds(20),
        });
        var status = await coordinator.MigrateAsync();
        return (status.PhaseDurations[MigrationPhase.Backfilling].TotalSeconds, count);
    }

    private static async Task<(double Held, double Longest, double WritesPerSecond)> PauseAsync(int run)
    {
        await using var source = await RedisServerProcess.StartAsync();
        await using var target = await RedisServerProcess.StartAsync();
        var id = $"benchmark-{run}";
        var settings = new Dictionary<string, string?>
        {
            ["RedisHotSwap:Source"] = source.ConfigurationString,
            ["RedisHotSwap:Target"] = target.ConfigurationString,
            ["RedisHotSwap:MigrationId"] = id,
            ["RedisHotSwap:HeartbeatInterval"] = "00:00:00.200",
            ["RedisHotSwap:HeartbeatTimeToLive"] = "00:00:02",
        };
        var instances = new List<ExternalInstance>();
        var checkedRuns = new List<CheckedRun>();
        MigrationStatus status;
        var started = DateTimeOffset.UtcNow;
        try
        {
            for (var i = 0; i < 3; i++)
            {
                instances.Add(await ExternalInstance.StartAsync(settings, load: "consistency"));
            }

            await using var coordinator = await MigrationCoordinator.ConnectAsync(new CoordinatorOptions
            {
                Source = source.ConfigurationString,
                Target = target.ConfigurationString,
                MigrationId = id,
                Sync = SyncMode.Copy,
                ExpectedInstances = 3,
                PollInterval = TimeSpan.FromMilliseconds(50),
            });
            status = await coordinator.MigrateAsync();
        }
        finally
        {
            foreach (var instance in instances)
            {
                checkedRuns.Add(await instance.StopCheckedAsync());
                await instance.DisposeAsync();
            }
        }

        if (checkedRuns.Any(r => r.Errors > 0 || r.Violations > 0))
        {
            throw new InvalidOperationException($"the load saw errors or violations: {string.Join(Environment.NewLine, checkedRuns.Select(r => r.Output))}");
        }

        var seconds = (DateTimeOffset.UtcNow - started).TotalSeconds;
        return (status.CopyPauseMs ?? double.NaN, checkedRuns.Max(r => r.MaxLatencyMs), checkedRuns.Sum(r => r.Writes) / seconds);
    }
}
