// A whole migration, live: three application instances write at full speed while the coordinator replicates
// SOURCE to TARGET, an operator flips each instance's configuration, and the coordinator promotes TARGET once every
// instance has moved. Two real redis-servers run on loopback; nothing is restarted.
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using RedisHotSwap;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using Spectre.Console;
using StackExchange.Redis;

const string MigrationId = "demo";
const int Instances = 3;
const int WritersPerInstance = 16;
const int SeedKeys = 200_000;

AnsiConsole.Write(new Rule("[bold]RedisHotSwap demo: a live migration[/]").LeftJustified());
await using var source = await RedisServerProcess.StartAsync();
await using var target = await RedisServerProcess.StartAsync();
await SeedAsync(source);
AnsiConsole.MarkupLine($"SOURCE [blue]{source.Endpoint}[/] with {SeedKeys:N0} keys, empty TARGET [blue]{target.Endpoint}[/]");

// Each instance is what an application does: configuration, one line of DI, resolve IConnectionMultiplexer.
var apps = Enumerable.Range(1, Instances).Select(i => App.Start(i, source, target, WritersPerInstance)).ToArray();

var flipped = 0;
var progress = new Progress(status =>
{
    // The operator's part: once the coordinator opens the writable window, flip each instance in turn.
    if (status.Phase == MigrationPhase.Cutover && Interlocked.Exchange(ref flipped, 1) == 0)
    {
        _ = Task.Run(async () =>
        {
            foreach (var app in apps)
            {
                await Task.Delay(300);
                AnsiConsole.MarkupLine($"[yellow]operator flips RedisHotSwap:UseTarget on instance {app.Number}[/]");
                app.UseTarget();
            }
        });
    }
});

MigrationStatus final;
await using (var coordinator = await MigrationCoordinator.ConnectAsync(new CoordinatorOptions
{
    Source = source.ConfigurationString,
    Target = target.ConfigurationString,
    MigrationId = MigrationId,
    ExpectedInstances = Instances,
}, progress))
{
    final = await coordinator.MigrateAsync();
}

await Task.WhenAll(apps.Select(a => a.Load.StopAsync()));
await using var targetAdmin = await ConnectionMultiplexer.ConnectAsync(target.ConfigurationString);
var writes = apps.SelectMany(a => a.Load.Acknowledged).ToArray();
var missing = (await WriteLoad.MissingOnAsync(targetAdmin.GetDatabase(), writes)).Length;
var errors = apps.Sum(a => a.Load.Errors.Count);
var table = new Table().AddColumns("", "value");
table.AddRow("acknowledged writes", $"{writes.Length:N0} from {Instances} instances x {WritersPerInstance} async writers");
foreach (var app in apps)
{
    table.AddRow($"instance {app.Number}", $"{app.Controller.ActiveSide}, switch took {app.SwitchDuration?.TotalMilliseconds:0.0} ms");
}

foreach (var (phase, duration) in final.PhaseDurations.OrderBy(p => p.Key))
{
    table.AddRow($"phase {phase}", $"{duration.TotalSeconds:0.00} s");
}

table.AddRow("TARGET", $"{final.TargetRole}, {final.TargetKeys.Values.Sum():N0} keys");
table.AddRow("errors seen by the applications", errors == 0 ? "[green]0[/]" : $"[red]{errors}[/] ({Markup.Escape(apps.SelectMany(a => a.Load.Errors).First().Message)})");
table.AddRow("acknowledged writes missing on TARGET", missing == 0 ? "[green]0[/]" : $"[red]{missing}[/]");
AnsiConsole.Write(table);
foreach (var app in apps)
{
    await app.DisposeAsync();
}

return errors == 0 && missing == 0 && final.TargetRole == "master" ? 0 : 1;

static async Task SeedAsync(RedisServerProcess server)
{
    await using var connection = await ConnectionMultiplexer.ConnectAsync(server.ConfigurationString);
    var db = connection.GetDatabase();
    foreach (var chunk in Enumerable.Range(0, SeedKeys).Chunk(10_000))
    {
        await db.StringSetAsync(chunk.Select(i => new KeyValuePair<RedisKey, RedisValue>($"seed:{i}", new string('x', 100))).ToArray());
    }
}

/// <summary>One application instance and its writers.</summary>
internal sealed class App : IAsyncDisposable
{
    private readonly IConfigurationRoot configuration;
    private readonly ServiceProvider services;

    private App(int number, IConfigurationRoot configuration, ServiceProvider services, int writerCount)
    {
        Number = number;
        this.configuration = configuration;
        this.services = services;
        Controller = services.GetRequiredService<IHotSwapController>();
        Controller.Switched += (_, e) => SwitchDuration = e.Duration;
        Load = new WriteLoad(services.GetRequiredService<IConnectionMultiplexer>().GetDatabase(), $"app{number}", writerCount);
    }

    public int Number { get; }

    public IHotSwapController Controller { get; }

    public TimeSpan? SwitchDuration { get; private set; }

    public WriteLoad Load { get; }

    public static App Start(int number, RedisServerProcess source, RedisServerProcess target, int writers)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RedisHotSwap:Source"] = source.ConfigurationString,
            ["RedisHotSwap:Target"] = target.ConfigurationString,
            ["RedisHotSwap:UseTarget"] = "false",
            ["RedisHotSwap:MigrationId"] = "demo",
        }).Build();
        var services = new ServiceCollection()
            .AddLogging(b => b.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning))
            .AddRedisHotSwap(configuration.GetSection("RedisHotSwap"))
            .BuildServiceProvider();
        return new App(number, configuration, services, writers);
    }

    public void UseTarget()
    {
        configuration["RedisHotSwap:UseTarget"] = "true";
        configuration.Reload();
    }

    public async ValueTask DisposeAsync()
    {
        await Load.DisposeAsync();
        await services.DisposeAsync();
    }
}

/// <summary>Prints a line whenever what the coordinator waits for changes.</summary>
internal sealed class Progress(Action<MigrationStatus> onStatus) : IProgress<MigrationStatus>
{
    private string? last;

    public void Report(MigrationStatus value)
    {
        onStatus(value);
        var line = $"{value.Phase}: waiting for {value.Waiting}";
        if (line != last)
        {
            last = line;
            var onTarget = value.Instances.Count(i => i.Side == RedisSide.Target);
            AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss.fff}[/] coordinator {Markup.Escape(line)} [grey](lag {value.LagBytes:N0} B, {onTarget}/{value.Instances.Count} instances on TARGET)[/]");
        }
    }
}
