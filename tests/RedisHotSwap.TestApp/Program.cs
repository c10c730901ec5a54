// An application instance in a process of its own: reads RedisHotSwap settings from the JSON file given as its
// first argument (reloaded on change, as an operator's edit would be), writes at full speed until a line arrives
// on standard input, then writes every acknowledged key=value to the file given as its second argument and prints
// "acknowledged <n> errors <n>" and the first distinct errors.
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using RedisHotSwap.Testing;
using StackExchange.Redis;

var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(args[0]), optional: false, reloadOnChange: true).Build();
await using var services = new ServiceCollection()
    .AddSingleton<IConfiguration>(configuration)
    .AddRedisHotSwap(configuration.GetSection("RedisHotSwap"))
    .BuildServiceProvider();
await using var load = new WriteLoad(services.GetRequiredService<IConnectionMultiplexer>().GetDatabase(), $"external:{Environment.ProcessId}", writers: 8);

Console.WriteLine("ready");
await Console.In.ReadLineAsync();
await load.StopAsync();
await File.WriteAllLinesAsync(args[1], load.Acknowledged.Select(w => $"{w.Key}={w.Value}"));
Console.WriteLine($"acknowledged {load.Acknowledged.Length} errors {load.Errors.Count}");
foreach (var error in load.Errors.Select(e => e.Message).Distinct().Take(5))
{
    Console.WriteLine($"error: {error}");
}
