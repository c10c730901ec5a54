using System.Globalization;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Benchmarks;

/// <summary>
/// Copy mode, measured (<c>--copy [keys] [cutovers] [loops]</c>): the backfill's rate for small keys (keys/s: in a fresh
/// process, then three times more as the runtime's optimisation of its code settles; each time over the copy's own
/// connections and through StackExchange.Redis, interleaved, with their ratio) and for large values (MB/s), each on two
/// fresh servers with no instance running, with the CPU each process spent per key;
/// then the cutover pause under the checked load of three instances in processes of their own (<c>loops</c> loops each, 32 by default: the more loops, the more writes a second), over
/// <c>cutovers</c> migrations: the coordinator's write hold (fence to the last instance on TARGET), the longest any
/// single command of any instance waited, and the write rate the load reached.
/// </summary>
internal static class CopyRun
{
    public static async Task<int> RunAsync(int keys, int runs, int loops)
    {
        ThreadPool.SetMinThreads(16, 16); // as the CLI does: the coordinator runs here, the instances in processes of their own
        // Four rounds: the first backfill in a process also pays for compiling the copy's code (a fixed cost of one to three
        // CPU seconds here, which a migration of millions of keys spreads thin); the runtime keeps optimising the hot code
        // for a while (tiered compilation): the later rounds show the rate a long backfill settles at. Each round runs the
        // copy's own connections and StackExchange.Redis's path (--copy-connections), in turn first, for their ratio.
        var rounds = new[] { "first in this process", "again, compiled", "a third time", "a fourth time" };
        for (var round = 0; round < rounds.Length; round++)
        {
            var rates = new Dictionary<CopyConnections, double>();
            foreach (var connections in round % 2 == 0 ? new[] { CopyConnections.Own, CopyConnections.Shared } : [CopyConnections.Shared, CopyConnections.Own])
            {
                var seconds = await BackfillAsync(keys, valueBytes: 16, connections);
                rates[connections] = keys / seconds;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"backfill, {keys:N0} keys of 16 B ({rounds[round]}, {connections} connections): {seconds:0.00} s, {keys / seconds:N0} keys/s"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  own connections against shared: {rates[CopyConnections.Own] / rates[CopyConnections.Shared]:0.00}x"));
        }

        const int large = 200;
        var big = await BackfillAsync(large, valueBytes: 1 << 20, CopyConnections.Own);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"backfill, {large} keys of 1 MiB: {big:0.00} s, {large / big:N1} MB/s"));

        var pauses = new List<(double Held, double Longest, double WritesPerSecond)>();
        for (var run = 1; run <= runs; run++)
        {
            var result = await PauseAsync(run, loops);
            pauses.Add((result.Held, result.Longest, result.WritesPerSecond));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cutover {run}: writes held {result.Held:0.0} ms, longest command wait {result.Longest:0.0} ms, load {result.WritesPerSecond:N0} writes/s; {result.Steps}"));
        }

        if (pauses.Count > 0)
        {
            var held = pauses.Select(p => p.Held).Order().ToArray();
            var rates = pauses.Select(p => p.WritesPerSecond).Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"writes held: median {held[held.Length / 2]:0.0} ms, worst {held[^1]:0.0} ms over {held.Length} cutovers, under {rates[0]:N0} to {rates[^1]:N0} writes/s ({loops} loops in each of 3 instances)"));
        }

        return 0;
    }

    private static async Task<double> BackfillAsync(int count, int valueBytes, CopyConnections connections)
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
            CopyConnections = connections,
            ExpectedInstances = 0,
            VerifySample = valueBytes > 1024 ? 10 : 1_000, // the backfill is measured; verification reads both sides whole
            PollInterval = TimeSpan.FromMilliseconds(20),
        });
        var cpu = (Source: await CpuSecondsAsync(source), Target: await CpuSecondsAsync(target), Coordinator: Environment.CpuUsage.TotalTime);
        var status = await coordinator.MigrateAsync();

        // Where the time went: the whole migration's CPU (the backfill is most of it), per key, on each side.
        var perKey = 1e6 / count;
        var (sourceCpu, targetCpu) = (await CpuSecondsAsync(source) - cpu.Source, await CpuSecondsAsync(target) - cpu.Target);
        var coordinatorCpu = (Environment.CpuUsage.TotalTime - cpu.Coordinator).TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  CPU per key over the whole migration: SOURCE {sourceCpu * perKey:0.0} µs, TARGET {targetCpu * perKey:0.0} µs, coordinator {coordinatorCpu * perKey:0.0} µs"));
        return status.PhaseDurations[MigrationPhase.Backfilling].TotalSeconds;
    }

    private static async Task<double> CpuSecondsAsync(RedisServerProcess server)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(server.ConfigurationString + ",allowAdmin=true");
        var info = (await connection.GetServer(server.Endpoint).InfoAsync("cpu")).SelectMany(g => g).ToDictionary(p => p.Key, p => p.Value);
        return double.Parse(info["used_cpu_user"], CultureInfo.InvariantCulture) + double.Parse(info["used_cpu_sys"], CultureInfo.InvariantCulture);
    }

    private static async Task<(double Held, double Longest, double WritesPerSecond, string? Steps)> PauseAsync(int run, int loops)
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
                instances.Add(await ExternalInstance.StartAsync(settings, load: $"consistency:{loops}"));
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
        return (status.CopyPauseMs ?? double.NaN, checkedRuns.Max(r => r.MaxLatencyMs), checkedRuns.Sum(r => r.Writes) / seconds, status.Waiting);
    }
}
