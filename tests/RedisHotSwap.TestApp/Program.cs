// An application instance in a process of its own: reads RedisHotSwap settings from the JSON file given as its
// first argument (reloaded on change, as an operator's edit would be), writes at full speed until a line arrives
// on standard input, then prints "acknowledged <n> errors <n>" and writes every acknowledged key=value to the file
// given as its second argument.
using System.Collections.Concurrent;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(args[0]), optional: false, reloadOnChange: true).Build();
await using var services = new ServiceCollection()
    .AddSingleton<IConfiguration>(configuration)
    .AddRedisHotSwap(configuration.GetSection("RedisHotSwap"))
    .BuildServiceProvider();
var db = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
var acknowledged = new ConcurrentQueue<string>();
var errors = new ConcurrentQueue<string>();
using var stop = new CancellationTokenSource();

var writers = Enumerable.Range(0, 8).Select(id => Task.Run(async () =>
{
    for (long i = 0; !stop.IsCancellationRequested; i++)
    {
        var key = $"external:{Environment.ProcessId}:{id}:{i}";
        try
        {
            await db.StringSetAsync(key, i);
            acknowledged.Enqueue($"{key}={i}");
        }
        catch (Exception ex)
        {
            errors.Enqueue(ex.Message);
        }
    }
})).ToArray();

Console.WriteLine("ready");
await Console.In.ReadLineAsync();
await stop.CancelAsync();
await Task.WhenAll(writers);
await File.WriteAllLinesAsync(args[1], acknowledged);
Console.WriteLine($"acknowledged {acknowledged.Count} errors {errors.Count}");
foreach (var error in errors.Distinct().Take(5))
{
    Console.WriteLine($"error: {error}");
}
