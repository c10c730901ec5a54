using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace RedisHotSwap.Demo;

/// <summary>
/// The terminal while the migration runs: each instance's side, throughput and latency, what the coordinator does,
/// and the last events. Redrawn in place on a terminal; one line every two seconds when the output is piped.
/// </summary>
internal sealed class LiveView(IReadOnlyList<InstanceProcess> instances, Timeline timeline)
{
    private readonly Lock gate = new();
    private readonly List<string> events = [];
    private readonly bool interactive = AnsiConsole.Profile.Capabilities.Interactive;
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private JsonObject? status;

    /// <summary>A coordinator event: kept for the status line; phase changes and outcomes become events.</summary>
    public void Coordinator(JsonObject e)
    {
        var kind = e["event"]?.GetValue<string>();
        var previous = status?["phase"]?.GetValue<string>();
        status = e["status"] as JsonObject ?? status;
        var phase = status?["phase"]?.GetValue<string>();
        if (kind == "progress" && phase != previous)
        {
            Event($"coordinator: phase {phase}; waiting for {status?["waiting"]}");
        }
        else if (kind is "done" or "failed" or "refused")
        {
            Event($"coordinator: {kind} {e["problem"] ?? e["problems"]}".TrimEnd());
        }
    }

    public void Event(string text)
    {
        var line = $"{clock.Elapsed.TotalSeconds,6:0.0} s  {text}";
        lock (gate)
        {
            events.Add(line);
        }

        if (!interactive)
        {
            Console.WriteLine(line);
        }
    }

    /// <summary>Shows the view until <paramref name="until"/> ends; returns its result.</summary>
    public async Task<int> RunAsync(Task<int> until, CancellationToken cancellationToken)
    {
        if (!interactive)
        {
            while (await Task.WhenAny(until, Task.Delay(TimeSpan.FromSeconds(2), cancellationToken)) != until)
            {
                Console.WriteLine($"{clock.Elapsed.TotalSeconds,6:0.0} s  {CoordinatorLine()}; {string.Join("; ", instances.Select(i => $"instance {i.Number} {i.Side} {Rate(i)} ops/s"))}");
            }

            return await until;
        }

        await AnsiConsole.Live(Render()).AutoClear(false).StartAsync(async context =>
        {
            while (await Task.WhenAny(until, Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken)) != until)
            {
                context.UpdateTarget(Render());
            }

            context.UpdateTarget(Render());
        });
        return await until;
    }

    private static string Rate(InstanceProcess instance) =>
        instance.Last is { } s ? (s.Operations * 5).ToString("N0", CultureInfo.InvariantCulture) : "-";

    private IRenderable Render()
    {
        var table = new Table().Border(TableBorder.Rounded).AddColumns("instance", "side", "generation", "ops/s", "mean ms", "slowest ms", "errors");
        foreach (var instance in instances)
        {
            var s = instance.Last;
            var side = instance.Side == "Target" ? "[green]TARGET[/]" : instance.Flipped ? "[yellow]SOURCE (flipped)[/]" : "SOURCE";
            table.AddRow(
                $"instance {instance.Number}",
                side,
                instance.Generation.ToString(CultureInfo.InvariantCulture),
                Rate(instance),
                s is null ? "-" : s.MeanMs.ToString("N2", CultureInfo.InvariantCulture),
                s is null ? "-" : s.MaxMs.ToString("N1", CultureInfo.InvariantCulture),
                s is null || s.Errors == 0 ? "0" : $"[red]{s.Errors:N0}[/]");
        }

        string[] recent;
        lock (gate)
        {
            recent = [.. events.TakeLast(8)];
        }

        return new Rows(
            new Markup($"[bold]{Markup.Escape(CoordinatorLine())}[/]"),
            table,
            new Panel(new Markup(Markup.Escape(recent.Length == 0 ? "(no events yet)" : string.Join('\n', recent)))).Header("events").Expand());
    }

    private string CoordinatorLine()
    {
        var s = status;
        if (s is null)
        {
            return $"coordinator: connecting ({clock.Elapsed.TotalSeconds:0.0} s)";
        }

        var line = $"coordinator: {s["phase"]}, waiting for {s["waiting"] ?? "-"}; lag {Number(s["lagBytes"])} B";
        if (s["syncInProgress"]?.GetValue<bool>() == true)
        {
            line += $", initial sync {Number(s["syncReadBytes"])} B read";
        }

        return line + $" (run time {timeline.Seconds(Timeline.Now):0.0} s)";
    }

    private static string Number(JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<long>(out var n) ? n.ToString("N0", CultureInfo.InvariantCulture) : "-";
}
