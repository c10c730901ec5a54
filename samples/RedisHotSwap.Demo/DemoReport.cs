using System.Text.Json;
using Spectre.Console;

namespace RedisHotSwap.Demo;

/// <summary>What the demo measured: written to report.json and printed at the end.</summary>
internal sealed record DemoReport
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerOptions.Web) { WriteIndented = true };

    public required string Cutover { get; init; }

    public required int Instances { get; init; }

    public required int SeededKeys { get; init; }

    public required long AcknowledgedWrites { get; init; }

    /// <summary>Exceptions the applications saw.</summary>
    public required long Errors { get; init; }

    public required long MissingAcknowledgedWrites { get; init; }

    /// <summary>The longest any single write took, in milliseconds.</summary>
    public required double MaxWriteStallMs { get; init; }

    public required int CoordinatorExitCode { get; init; }

    public required string CoordinatorOutcome { get; init; }

    public required IReadOnlyList<PhaseDuration> Phases { get; init; }

    /// <summary>Keys per database on each side after the migration.</summary>
    public required IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>> Keys { get; init; }

    public required IReadOnlyList<InstanceResult> PerInstance { get; init; }

    /// <summary>Handoff: how long the coordinator held SOURCE's writes while the primary role moved; null for a window cutover.</summary>
    public double? HandoffPauseMs { get; init; }

    /// <summary>Handoff: from the promotion until the last instance had switched.</summary>
    public double? LastInstanceSwitchMs { get; init; }

    public async Task WriteJsonAsync(string path, CancellationToken cancellationToken)
    {
        await using var file = File.Create(path);
        await JsonSerializer.SerializeAsync(file, this, Json, cancellationToken);
    }

    public void Print(string jsonPath, string pngPath)
    {
        var table = new Table().Title("[bold]what happened[/]").AddColumns("", "value");
        table.AddRow("cutover", Cutover);
        table.AddRow("coordinator", CoordinatorExitCode == 0 ? $"[green]{Markup.Escape(CoordinatorOutcome)}[/]" : $"[red]exit {CoordinatorExitCode}: {Markup.Escape(CoordinatorOutcome)}[/]");
        foreach (var phase in Phases)
        {
            table.AddRow($"phase {Markup.Escape(phase.Name)}", $"{phase.Seconds:N2} s");
        }

        foreach (var instance in PerInstance)
        {
            var moved = instance.SwitchedAtSeconds is { } at ? $"on TARGET from {at:N2} s" : "never switched";
            var flipped = instance.FlippedAtSeconds is { } f ? $"flipped at {f:N2} s" : "not flipped (moved by directive)";
            table.AddRow($"instance {instance.Instance}", $"{instance.Side}; {flipped}; {moved}; {instance.AcknowledgedWrites:N0} writes acknowledged");
        }

        if (HandoffPauseMs is { } pause)
        {
            table.AddRow("writes held by the handoff", $"{pause:N1} ms");
            table.AddRow("last instance on TARGET", $"{LastInstanceSwitchMs ?? 0:N1} ms after the promotion");
        }

        table.AddRow("acknowledged writes", $"{AcknowledgedWrites:N0}");
        table.AddRow("longest single write", $"{MaxWriteStallMs:N1} ms");
        table.AddRow("keys SOURCE", Keys["source"].Count == 0 ? "0" : string.Join(", ", Keys["source"].Select(k => $"{k.Key} {k.Value:N0}")));
        table.AddRow("keys TARGET", Keys["target"].Count == 0 ? "0" : string.Join(", ", Keys["target"].Select(k => $"{k.Key} {k.Value:N0}")));
        var firstError = PerInstance.Select(i => i.FirstError).FirstOrDefault(e => e is not null);
        table.AddRow("errors seen by the applications", Errors == 0 ? "[green]0[/]" : $"[red]{Errors:N0}[/] ({Markup.Escape(firstError ?? string.Empty)})");
        table.AddRow("acknowledged writes missing on TARGET", MissingAcknowledgedWrites == 0 ? "[green]0[/]" : $"[red]{MissingAcknowledgedWrites:N0}[/]");
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"report: [blue]{Markup.Escape(jsonPath)}[/], picture: [blue]{Markup.Escape(pngPath)}[/]");
    }
}
