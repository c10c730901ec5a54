// The seed procedure, live: an application writes at full speed while its Redis moves from SOURCE to TARGET.
// Two real redis-servers are started on loopback; TARGET replicates SOURCE as a writable replica; a configuration
// reload (what an operator's flag flip does) moves the running application; nothing is restarted.
using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RedisHotSwap;
using RedisHotSwap.Testing;
using Spectre.Console;
using StackExchange.Redis;

const int Writers = 32;
var loadTime = TimeSpan.FromSeconds(2);

AnsiConsole.Write(new Rule("[bold]RedisHotSwap demo[/]").LeftJustified());
await using var source = await RedisServerProcess.StartAsync();
await using var target = await RedisServerProcess.StartAsync(settings:
[
    $"masterauth {source.Password}",
    $"replicaof 127.0.0.1 {source.Port}",
    "replica-read-only no",
]);
await using var targetAdmin = await ConnectionMultiplexer.ConnectAsync(target.ConfigurationString + ",allowAdmin=true");
await WaitForAsync(async () => (await InfoAsync(targetAdmin, "replication")).Contains("master_link_status:up", StringComparison.Ordinal));
AnsiConsole.MarkupLine($"SOURCE [blue]{source.Endpoint}[/], TARGET [blue]{target.Endpoint}[/] (replica of SOURCE, replica-read-only no)");

// What an application does: configuration, one line of DI, resolve IConnectionMultiplexer.
var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
{
    ["RedisHotSwap:Source"] = source.ConfigurationString,
    ["RedisHotSwap:Target"] = target.ConfigurationString,
    ["RedisHotSwap:UseTarget"] = "false",
    ["RedisHotSwap:MigrationId"] = "demo",
}).Build();
await using var services = new ServiceCollection()
    .AddLogging(b => b.AddSimpleConsole(o => o.SingleLine = true)
        .SetMinimumLevel(LogLevel.Information)
        .AddFilter("StackExchange.Redis", LogLevel.Warning))
    .AddRedisHotSwap(configuration.GetSection("RedisHotSwap"))
    .BuildServiceProvider();
var redis = services.GetRequiredService<IConnectionMultiplexer>();
var control = services.GetRequiredService<IHotSwapController>();
var db = redis.GetDatabase(); // taken once, like a cache library does

var acknowledged = new ConcurrentQueue<(RedisKey Key, long Value)>();
var errors = new ConcurrentQueue<Exception>();
using var stop = new CancellationTokenSource();
var clock = Stopwatch.StartNew();
var loops = Enumerable.Range(0, Writers).Select(id => Task.Run(async () =>
{
    for (long i = 0; !stop.IsCancellationRequested; i++)
    {
        RedisKey key = $"demo:{id}:{i}";
        try
        {
            await db.StringSetAsync(key, i);
            acknowledged.Enqueue((key, i));
        }
        catch (Exception ex)
        {
            errors.Enqueue(ex);
        }
    }
})).ToArray();

await Task.Delay(loadTime);
var switched = new TaskCompletionSource<RedisSwitchedEventArgs>();
control.Switched += (_, e) => switched.TrySetResult(e);
AnsiConsole.MarkupLine($"[yellow]Operator flips RedisHotSwap:UseTarget to true[/] after {acknowledged.Count:N0} writes");
configuration["RedisHotSwap:UseTarget"] = "true";
configuration.Reload();
var done = await switched.Task.WaitAsync(TimeSpan.FromSeconds(30));
await Task.Delay(loadTime);
await stop.CancelAsync();
await Task.WhenAll(loops);
var elapsed = clock.Elapsed;

// The last step of the procedure: nothing writes SOURCE any more, TARGET has its stream: promote it.
await targetAdmin.GetDatabase().ExecuteAsync("REPLICAOF", "NO", "ONE");

var writes = acknowledged.ToArray();
var missing = 0;
foreach (var chunk in writes.Chunk(5_000))
{
    var values = await targetAdmin.GetDatabase().StringGetAsync(chunk.Select(w => w.Key).ToArray());
    missing += chunk.Where((w, i) => values[i] != w.Value).Count();
}

var table = new Table().AddColumns("", "value");
table.AddRow("acknowledged writes", $"{writes.Length:N0} ({writes.Length / elapsed.TotalSeconds:N0}/s over {Writers} async writers)");
table.AddRow("switch", $"{done.From} -> {done.To} in {done.Duration.TotalMilliseconds:N1} ms, reason: {Markup.Escape(done.Reason)}");
table.AddRow("errors seen by the application", errors.IsEmpty ? "[green]0[/]" : $"[red]{errors.Count}[/] ({Markup.Escape(errors.First().Message)})");
table.AddRow("acknowledged writes missing on TARGET", missing == 0 ? "[green]0[/]" : $"[red]{missing}[/]");
table.AddRow("TARGET role after promotion", (await InfoAsync(targetAdmin, "replication")).Contains("role:master", StringComparison.Ordinal) ? "master" : "[red]not master[/]");
AnsiConsole.Write(table);

return errors.IsEmpty && missing == 0 ? 0 : 1;

static async Task<string> InfoAsync(ConnectionMultiplexer admin, string section) =>
    (string)(await admin.GetDatabase().ExecuteAsync("INFO", section))!;

static async Task WaitForAsync(Func<Task<bool>> condition)
{
    var deadline = Stopwatch.StartNew();
    while (!await condition())
    {
        if (deadline.Elapsed > TimeSpan.FromSeconds(30))
        {
            throw new TimeoutException("TARGET did not finish its initial sync within 30 s.");
        }

        await Task.Delay(50);
    }
}
