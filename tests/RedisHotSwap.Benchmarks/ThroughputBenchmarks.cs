using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.DependencyInjection;
using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Benchmarks;

/// <summary>
/// Raw StackExchange.Redis against the swappable multiplexer, on the same server in the same run: 64 concurrent
/// async loops at full speed on loopback, as the brief's reference figures were measured. Read the Ratio column
/// and Allocated per operation; absolute ops/s vary by ±10% between runs on this machine.
/// </summary>
[MemoryDiagnoser]
public class ThroughputBenchmarks
{
    private const int Loops = 64;
    private const int OperationsPerLoop = 1000;
    internal const int Operations = Loops * OperationsPerLoop;

    private RedisServerProcess source = null!;
    private RedisServerProcess target = null!;
    private ConnectionMultiplexer raw = null!;
    private ServiceProvider services = null!;
    private IDatabase rawDb = null!;
    private IDatabase swapDb = null!;

    [Params("set", "get", "mixed")]
    public string Pattern { get; set; } = "mixed";

    [GlobalSetup]
    public async Task Setup()
    {
        source = await RedisServerProcess.StartAsync();
        target = await RedisServerProcess.StartAsync();
        raw = await ConnectionMultiplexer.ConnectAsync(source.ConfigurationString);
        services = new ServiceCollection()
            .AddRedisHotSwap(o =>
            {
                o.Source = source.ConfigurationString;
                o.Target = target.ConfigurationString;
            })
            .BuildServiceProvider();
        rawDb = raw.GetDatabase();
        swapDb = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
        for (var i = 0; i < Loops; i++)
        {
            await rawDb.StringSetAsync($"bench:{i}", new string('x', 64));
        }
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await services.DisposeAsync();
        await raw.DisposeAsync();
        await source.DisposeAsync();
        await target.DisposeAsync();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Operations)]
    public Task Raw() => RunAsync(rawDb);

    [Benchmark(OperationsPerInvoke = Operations)]
    public Task HotSwap() => RunAsync(swapDb);

    private Task RunAsync(IDatabase db)
    {
        var loops = new Task[Loops];
        for (var i = 0; i < Loops; i++)
        {
            loops[i] = LoopAsync(db, i);
        }

        return Task.WhenAll(loops);
    }

    private async Task LoopAsync(IDatabase db, int id)
    {
        RedisKey key = $"bench:{id}";
        RedisValue value = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for (var i = 0; i < OperationsPerLoop; i++)
        {
            switch (Pattern)
            {
                case "set":
                    await db.StringSetAsync(key, value);
                    break;
                case "get":
                    await db.StringGetAsync(key);
                    break;
                default:
                    if ((i & 1) == 0)
                    {
                        await db.StringSetAsync(key, value);
                    }
                    else
                    {
                        await db.StringGetAsync(key);
                    }

                    break;
            }
        }
    }
}
