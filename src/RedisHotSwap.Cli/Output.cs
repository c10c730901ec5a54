using System.Text.Json;
using System.Text.Json.Serialization;
using RedisHotSwap.Coordinator;
using Spectre.Console;

namespace RedisHotSwap.Cli;

/// <summary>Where a verb's progress and outcome go: the terminal, or JSON lines for scripts.</summary>
internal interface IOutput
{
    IProgress<MigrationStatus> Progress { get; }

    void Finished(string verb, MigrationStatus status, TimeSpan elapsed, bool showStatus);

    void Refused(IReadOnlyList<string> problems);

    void Halted(MigrationHaltedException halted);

    void Audit(string change);
}

internal sealed class JsonOutput : IOutput
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
    };

    public IProgress<MigrationStatus> Progress { get; } = new ThrottledProgress(s => Write(new { @event = "progress", status = s }));

    public void Finished(string verb, MigrationStatus status, TimeSpan elapsed, bool showStatus) =>
        Write(new { @event = "done", verb, elapsedSeconds = elapsed.TotalSeconds, status });

    public void Refused(IReadOnlyList<string> problems) => Write(new { @event = "refused", problems });

    public void Audit(string change) => Write(new { @event = "audit", at = change[..change.IndexOf(' ', StringComparison.Ordinal)], change = change[(change.IndexOf(' ', StringComparison.Ordinal) + 1)..] });

    public void Halted(MigrationHaltedException halted) =>
        Write(new { @event = "failed", problem = halted.Problem, stateLeft = halted.StateLeft, howToContinue = halted.HowToContinue });

    private static void Write(object value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Options));
}

internal sealed class ConsoleOutput : IOutput
{
    public ConsoleOutput() => Progress = new ThrottledProgress(Report);

    public IProgress<MigrationStatus> Progress { get; }

    public void Audit(string change) => AnsiConsole.MarkupLineInterpolated(System.Globalization.CultureInfo.InvariantCulture, $"[grey]{change}[/]");

    public void Finished(string verb, MigrationStatus status, TimeSpan elapsed, bool showStatus)
    {
        if (showStatus || verb == "status")
        {
            AnsiConsole.Write(StatusTable(status));
            AnsiConsole.Write(InstancesTable(status));
        }

        var phases = new Table().Title("phases").AddColumns("phase", "duration");
        foreach (var (phase, duration) in status.PhaseDurations.OrderBy(p => p.Key))
        {
            phases.AddRow(phase.ToString(), $"{duration.TotalSeconds:0.0} s");
        }

        AnsiConsole.Write(phases);
        AnsiConsole.MarkupLine($"[green]{verb}: done[/] in {elapsed.TotalSeconds:0.0} s; migration '{Markup.Escape(status.MigrationId)}' is {status.Phase}.");
    }

    public void Refused(IReadOnlyList<string> problems)
    {
        foreach (var problem in problems)
        {
            AnsiConsole.MarkupLine($"[red]refused:[/] {Markup.Escape(problem)}");
        }
    }

    public void Halted(MigrationHaltedException halted)
    {
        AnsiConsole.MarkupLine($"[red]stopped:[/] {Markup.Escape(halted.Problem)}");
        AnsiConsole.MarkupLine($"[yellow]left as:[/] {Markup.Escape(halted.StateLeft)}");
        AnsiConsole.MarkupLine($"[yellow]next:[/] {Markup.Escape(halted.HowToContinue)}");
    }

    // One line whenever what it waits for changes, so a log or a terminal both read well.
    private void Report(MigrationStatus status)
    {
        var line = $"{status.Phase}: waiting for {status.Waiting}; link {(status.LinkUp ? "up" : "down")}, lag {status.LagBytes} B"
            + (status.SyncInProgress ? $", synced {status.SyncReadBytes:N0} B" : string.Empty)
            + $", keys SOURCE {Keys(status.SourceKeys)} / TARGET {Keys(status.TargetKeys)}"
            + $", instances {status.Instances.Count(i => i.Side == RedisSide.Target)}/{status.Instances.Count} on TARGET";
        AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(line)}");
    }

    private static Table StatusTable(MigrationStatus s) => new Table().Title($"migration {Markup.Escape(s.MigrationId)}").AddColumns("", "value")
        .AddRow("phase", s.Phase.ToString())
        .AddRow("SOURCE", Markup.Escape(s.Source))
        .AddRow("TARGET", Markup.Escape($"{s.Target} ({s.TargetRole})"))
        .AddRow("replication link", s.TargetRole == "slave" ? (s.LinkUp ? "up" : "[red]down[/]") : "none")
        .AddRow("initial sync", s.SyncInProgress ? $"running, {s.SyncReadBytes:N0} B read" : "finished or not started")
        .AddRow("lag", $"{s.LagBytes:N0} B")
        .AddRow("keys SOURCE", Keys(s.SourceKeys))
        .AddRow("keys TARGET", Keys(s.TargetKeys))
        .AddRow("waiting for", Markup.Escape(s.Waiting ?? "-"));

    private static Table InstancesTable(MigrationStatus s)
    {
        var table = new Table().Title("instances").AddColumns("instance", "application", "host", "pid", "side", "generation", "last report");
        foreach (var i in s.Instances)
        {
            table.AddRow(Markup.Escape(i.InstanceId), Markup.Escape(i.Application), Markup.Escape(i.Host), i.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                i.Side == RedisSide.Target ? "[green]Target[/]" : "[yellow]Source[/]", i.Generation.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{i.LastReported.TotalSeconds:0.0} s ago");
        }

        return table;
    }

    private static string Keys(IReadOnlyDictionary<int, long> keys) =>
        keys.Count == 0 ? "0" : string.Join(" ", keys.OrderBy(k => k.Key).Select(k => $"db{k.Key}={k.Value:N0}"));
}

/// <summary>
/// Passes on a status when what the coordinator waits for changes, and otherwise every two seconds (so a long sync
/// shows its bytes and lag moving without flooding a log). Runs on the caller's thread, in order.
/// </summary>
internal sealed class ThrottledProgress(Action<MigrationStatus> report) : IProgress<MigrationStatus>
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(2);
    private string? last;
    private long lastAt;

    public void Report(MigrationStatus value)
    {
        var summary = $"{value.Phase}|{value.Waiting}";
        if (summary == last && System.Diagnostics.Stopwatch.GetElapsedTime(lastAt) < Every)
        {
            return;
        }

        last = summary;
        lastAt = System.Diagnostics.Stopwatch.GetTimestamp();
        report(value);
    }
}
