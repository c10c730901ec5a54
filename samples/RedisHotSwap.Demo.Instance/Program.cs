// One application instance of the demo, in its own process. It is what an application does: configuration from a
// JSON file (reloaded on change, as an operator's edit would be), one line of DI, IConnectionMultiplexer resolved and
// used. Writers and readers run at full speed; every 200 ms one JSON line of statistics goes to standard output. A
// line on standard input stops the load; the instance then writes what the servers acknowledged to the file given as
// its second argument and prints a last "done" line.
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RedisHotSwap;
using RedisHotSwap.Demo.Instance;
using StackExchange.Redis;

var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(args[0]), optional: false, reloadOnChange: true).Build();
await using var services = new ServiceCollection()
    .AddSingleton<IConfiguration>(configuration)
    .AddLogging(b => b.SetMinimumLevel(LogLevel.Warning).AddSimpleConsole(o => o.SingleLine = true)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)) // standard output carries the statistics
    .AddRedisHotSwap(configuration.GetSection("RedisHotSwap"))
    .BuildServiceProvider();

var redis = services.GetRequiredService<IConnectionMultiplexer>();
var controller = services.GetRequiredService<IHotSwapController>();
var name = configuration["Demo:Name"] ?? $"instance-{Environment.ProcessId}";
var seedKeys = configuration.GetValue("Demo:SeedKeys", 0);
var load = new Load(redis.GetDatabase(), name, writers: configuration.GetValue("Demo:Writers", 8), readers: configuration.GetValue("Demo:Readers", 4), seedKeys);

using var stop = new CancellationTokenSource();
var stats = Task.Run(async () =>
{
    using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
    while (await timer.WaitForNextTickAsync(stop.Token))
    {
        var sample = load.Take();
        Console.WriteLine(JsonSerializer.Serialize(new StatsLine(
            "stats", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), controller.ActiveSide.ToString(), controller.Generation,
            sample.Operations, sample.Errors, sample.MeanMilliseconds, sample.MaxMilliseconds, sample.MaxWriteMilliseconds)));
    }
});

Console.WriteLine("ready");
await Console.In.ReadLineAsync();
await stop.CancelAsync();
await stats.ContinueWith(_ => { }, TaskScheduler.Default);
await load.StopAsync();
await File.WriteAllLinesAsync(args[1], load.Acknowledged());
Console.WriteLine(JsonSerializer.Serialize(new { kind = "done", acknowledged = load.AcknowledgedCount, errors = load.ErrorCount, firstError = load.FirstError }));

namespace RedisHotSwap.Demo.Instance
{
    /// <summary>One statistics line: what happened in the last interval.</summary>
    internal sealed record StatsLine(string Kind, long UnixMs, string Side, long Generation, long Operations, long Errors, double MeanMs, double MaxMs, double MaxWriteMs);
}
