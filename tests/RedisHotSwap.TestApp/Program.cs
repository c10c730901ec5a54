// An application instance in a process of its own: reads RedisHotSwap settings from the JSON file given as its
// first argument (reloaded on change, as an operator's edit would be), runs a load until a line arrives on standard
// input, then writes what the server must hold (key=value lines) to the file given as its second argument and prints
// a summary line and the first distinct errors.
// Load (third argument): "write" (default; WriteLoad: unique keys at full speed) or "consistency" (ConsistencyLoad:
// writes, read-your-writes and counters checked as they run; prints violations and the slowest commands), each with
// an optional ":N" for N loops (8 by default), and the checked one with "@R" for a pace of R writes/s in this process.
using System.Globalization;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RedisHotSwap.Testing;
using StackExchange.Redis;

// Or, with the arguments "coordinator STEP [MODE PROMOTION-TIMEOUT]": the coordinator killed after a given server
// command (KilledCoordinator).
if (args is ["coordinator", var killAfter, ..])
{
    return await KilledCoordinator.RunAsync(killAfter, args.ElementAtOrDefault(2), args.ElementAtOrDefault(3));
}

// Several loops in one process need threads at once; the pool would add them slowly (see the README's measuring note).
ThreadPool.SetMinThreads(32, 32);
var configuration = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(args[0]), optional: false, reloadOnChange: true).Build();
await using var services = new ServiceCollection()
    .AddSingleton<IConfiguration>(configuration)
    .AddLogging(b => b.AddProvider(new FileLoggerProvider(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(args[1]))!, "instance.log"))))
    .AddRedisHotSwap(configuration.GetSection("RedisHotSwap"))
    .BuildServiceProvider();
var db = services.GetRequiredService<IConnectionMultiplexer>().GetDatabase();
// "consistency:N@R": N loops (8 by default; more loops, more writes a second), paced at R writes/s when given.
var paced = args.Length > 2 ? args[2].Split('@', 2) : ["write"];
var load = paced[0].Split(':', 2);
var consistency = load[0] == "consistency";
var loops = load.Length > 1 ? int.Parse(load[1], CultureInfo.InvariantCulture) : 8;
double? pace = paced.Length > 1 ? double.Parse(paced[1], CultureInfo.InvariantCulture) : null;
var prefix = $"external:{Environment.ProcessId}";
await using var writeLoad = consistency ? null : new WriteLoad(db, prefix, writers: loops);
await using var checkedLoad = consistency ? new ConsistencyLoad(db, prefix, loops, pace) : null;

Console.WriteLine("ready");
await Console.In.ReadLineAsync();
IReadOnlyCollection<Exception> errors;
if (checkedLoad is not null)
{
    await checkedLoad.StopAsync();
    await File.WriteAllLinesAsync(args[1], checkedLoad.Expected());
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"acknowledged {checkedLoad.Writes} errors {checkedLoad.Errors.Count} violations {checkedLoad.Violations.Count} max-latency-ms {checkedLoad.MaxLatencyMilliseconds:0.###}"));
    foreach (var violation in checkedLoad.Violations.Take(5))
    {
        Console.WriteLine($"violation: {violation}");
    }

    foreach (var (at, ms) in checkedLoad.Slow)
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"slow {at.ToUnixTimeMilliseconds()} {ms:0.###}"));
    }

    errors = checkedLoad.Errors;
}
else
{
    await writeLoad!.StopAsync();
    await File.WriteAllLinesAsync(args[1], writeLoad.Acknowledged.Select(w => $"{w.Key}={w.Value}"));
    Console.WriteLine($"acknowledged {writeLoad.Acknowledged.Length} errors {writeLoad.Errors.Count}");
    errors = writeLoad.Errors;
}

foreach (var error in errors.Select(e => e.Message).Distinct().Take(5))
{
    Console.WriteLine($"error: {error}");
}
return 0;
