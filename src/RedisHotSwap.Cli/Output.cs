using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using RedisHotSwap.Coordinator;
using Spectre.Console;

namespace RedisHotSwap.Cli;

/// <summary>Where a verb's progress and outcome go: the terminal, or JSON lines for scripts.</summary>
internal interface IOutput
{
    IProgress<MigrationStatus> Progress { get; }

    /// <summary>Whether the verb already wrote its outcome (a plan, a watch), so no summary follows.</summary>
    bool Ended { get; }

    void Finished(string verb, MigrationStatus status, TimeSpan elapsed, bool showStatus);

    void Refused(IReadOnlyList<string> problems);

    void Halted(MigrationHaltedException halted);

    void Plan(IReadOnlyList<string> steps);

    /// <summary>A command that changed a server, with its time (ISO-8601) first and its reason.</summary>
    void Audit(string change);

    /// <summary>Shows <paramref name="first"/>, then a fresh status at each tick, until cancelled.</summary>
    Task WatchAsync(MigrationStatus first, Func<Task<MigrationStatus>> next, PeriodicTimer timer, CancellationToken cancellationToken);
}

/// <summary>One JSON object per line, each with <c>event</c> and <c>time</c> (ISO-8601, UTC); durations in seconds, sizes in bytes.</summary>
internal sealed class JsonOutput : IOutput
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(), new SecondsConverter() },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public IProgress<MigrationStatus> Progress { get; } = new ThrottledProgress(s => Write("progress", new { status = s }));

    public bool Ended { get; private set; }

    public void Finished(string verb, MigrationStatus status, TimeSpan elapsed, bool showStatus) =>
        Write("done", new { verb, elapsedSeconds = Math.Round(elapsed.TotalSeconds, 3), ready = verb == "check" ? true : (bool?)null, status });

    public void Refused(IReadOnlyList<string> problems) => Write("refused", new { problems });

    public void Audit(string change) => Write("audit", new { at = change[..change.IndexOf(' ', StringComparison.Ordinal)], change = change[(change.IndexOf(' ', StringComparison.Ordinal) + 1)..] });

    public void Halted(MigrationHaltedException halted) =>
        Write("failed", new { problem = halted.Problem, stateLeft = halted.StateLeft, howToContinue = halted.HowToContinue });

    public void Plan(IReadOnlyList<string> steps)
    {
        Ended = true;
        Write("plan", new { dryRun = true, steps });
    }

    public async Task WatchAsync(MigrationStatus first, Func<Task<MigrationStatus>> next, PeriodicTimer timer, CancellationToken cancellationToken)
    {
        Ended = true;
        Write("status", new { status = first });
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                Write("status", new { status = await next() });
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl+C ends a watch; nothing was running.
        }
    }

    private static void Write(string kind, object body)
    {
        var json = JsonSerializer.SerializeToNode(body, Options)!.AsObject();
        json.Insert(0, "event", kind);
        json.Insert(1, "time", DateTimeOffset.UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture));
        Console.Out.WriteLine(json.ToJsonString(Options));
    }

    /// <summary>Durations as seconds (a number), the one unit of time in the events.</summary>
    private sealed class SecondsConverter : JsonConverter<TimeSpan>
    {
        public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => TimeSpan.FromSeconds(reader.GetDouble());

        public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) => writer.WriteNumberValue(Math.Round(value.TotalSeconds, 3));
    }
}

/// <summary>Tables and one line per change, for a person at a terminal or reading a log.</summary>
internal sealed class ConsoleOutput : IOutput
{
    /// <summary>An instance whose last report is older than this has probably stopped (reports come every second).</summary>
    private static readonly TimeSpan Stale = TimeSpan.FromSeconds(3);

    private readonly CoordinatorOptions options;
    private (long Bytes, long At)? lastSync;

    public ConsoleOutput(CoordinatorOptions options)
    {
        this.options = options;
        Progress = new ThrottledProgress(Report);
        if (Console.IsOutputRedirected)
        {
            AnsiConsole.Profile.Width = 4096; // a pipe or a log: no wrapping
        }
    }

    public IProgress<MigrationStatus> Progress { get; }

    public bool Ended { get; private set; }

    public void Finished(string verb, MigrationStatus status, TimeSpan elapsed, bool showStatus)
    {
        if (verb == "check")
        {
            foreach (var check in Checks)
            {
                AnsiConsole.MarkupLine($"[green]ok[/] {Markup.Escape(check)}");
            }

            AnsiConsole.MarkupLine($"[green]ready:[/] migration '{Markup.Escape(status.MigrationId)}' can start: run 'redis-hotswap migrate --migration {Markup.Escape(status.MigrationId)} --expect-instances N'.");
            return;
        }

        if (showStatus || verb == "status")
        {
            AnsiConsole.Write(Status(status));
        }

        if (status.PhaseDurations.Count > 0)
        {
            var phases = new Table().Title("phases").AddColumns("phase", "duration");
            foreach (var (phase, duration) in status.PhaseDurations.OrderBy(p => p.Key))
            {
                phases.AddRow(phase.ToString(), Format.Duration(duration));
            }

            AnsiConsole.Write(phases);
        }

        AnsiConsole.MarkupLine($"[green]{verb}: done[/] in {Format.Duration(elapsed)}; migration '{Markup.Escape(status.MigrationId)}' is {status.Phase}.");
    }

    public void Audit(string change) => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(change)}[/]");

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

    public void Plan(IReadOnlyList<string> steps)
    {
        Ended = true;
        AnsiConsole.MarkupLine("[bold]dry run:[/] preflight passed; 'migrate' would do this, in order:");
        for (var i = 0; i < steps.Count; i++)
        {
            AnsiConsole.MarkupLine($"  {i + 1}. {Markup.Escape(steps[i])}");
        }

        AnsiConsole.MarkupLine("Nothing was changed.");
    }

    public async Task WatchAsync(MigrationStatus first, Func<Task<MigrationStatus>> next, PeriodicTimer timer, CancellationToken cancellationToken)
    {
        Ended = true;
        try
        {
            await AnsiConsole.Live(Status(first)).StartAsync(async context =>
            {
                while (await timer.WaitForNextTickAsync(cancellationToken))
                {
                    context.UpdateTarget(Status(await next()));
                }
            });
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Ctrl+C ends a watch; nothing was running.
        }
    }

    // What CheckAsync verifies; printed when it passes.
    private static readonly string[] Checks =
    [
        "SOURCE and TARGET are reachable and accept the credentials",
        "SOURCE and TARGET are different servers (run_id), and SOURCE is a primary",
        "TARGET replicates no other server and holds no keys (or --allow-target-data)",
        "TARGET runs the same Redis version as SOURCE or a newer one",
        "TARGET's maxmemory holds SOURCE's used memory",
        "both sides allow CONFIG (the coordinator sets masterauth, replica-read-only and the fence)",
        "the migration id was not used to completion",
    ];

    // One line whenever what it waits for changes (or every two seconds), so a log or a terminal both read well.
    private void Report(MigrationStatus status)
    {
        var line = status.Phase switch
        {
            MigrationPhase.Replicating when status.SyncInProgress => $"{status.Phase}: initial sync {SyncProgress(status)}",
            MigrationPhase.Cutover => $"TARGET is writable: flip the instances now (RedisHotSwap:UseTarget or the feature flag). {Instances(status)}. {Window(status)}",
            _ => $"{status.Phase}: waiting for {status.Waiting}; link {(status.LinkUp ? "up" : "down")}, lag {Format.Bytes(status.LagBytes)}, keys SOURCE {Keys(status.SourceKeys)} / TARGET {Keys(status.TargetKeys)}, {Instances(status)}",
        };
        AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(line)}");
    }

    private string SyncProgress(MigrationStatus status)
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        var text = status.SyncTotalBytes > 0
            ? $"{Format.Bytes(status.SyncReadBytes)} of {Format.Bytes(status.SyncTotalBytes)} ({Format.Percent((double)status.SyncReadBytes / status.SyncTotalBytes)})"
            : $"{Format.Bytes(status.SyncReadBytes)} read (total unknown: diskless sync)";
        if (lastSync is { } last && status.SyncTotalBytes > 0 && status.SyncReadBytes > last.Bytes)
        {
            var rate = (status.SyncReadBytes - last.Bytes) / System.Diagnostics.Stopwatch.GetElapsedTime(last.At, now).TotalSeconds;
            text += $", about {Format.Duration(TimeSpan.FromSeconds((status.SyncTotalBytes - status.SyncReadBytes) / rate))} left";
        }

        lastSync = (status.SyncReadBytes, now);
        return text;
    }

    // Told apart: on TARGET, still on SOURCE (or draining it), and expected but never reported.
    private string Instances(MigrationStatus status)
    {
        var onTarget = status.Instances.Count(i => i.Side == RedisSide.Target && !i.Draining);
        var text = $"instances: {Format.Count(onTarget)} on TARGET, {Format.Count(status.Instances.Count - onTarget)} on SOURCE or draining";
        var unseen = options.ExpectedInstances - status.Instances.Count;
        return unseen > 0 ? $"{text}, {Format.Count(unseen)} expected but never reported (is RedisHotSwap:MigrationId set on every instance?)" : text;
    }

    private string Window(MigrationStatus status)
    {
        var elapsed = status.PhaseDurations.TryGetValue(MigrationPhase.Cutover, out var d) ? d : TimeSpan.Zero;
        var left = options.InstancesTimeout - elapsed;
        return $"Waiting {Format.Duration(elapsed)} of {Format.Duration(options.InstancesTimeout)} ({Format.Duration(left < TimeSpan.Zero ? TimeSpan.Zero : left)} left).";
    }

    private Rows Status(MigrationStatus s)
    {
        var known = s.Phase != MigrationPhase.New || s.PhaseDurations.Count > 0 || s.Instances.Count > 0;
        var table = new Table().Title($"migration {Markup.Escape(s.MigrationId)}").AddColumns("", "value")
            .AddRow("phase", known ? s.Phase.ToString() : $"[yellow]unknown: no migration '{Markup.Escape(s.MigrationId)}' has run here and no instance reports it; check --migration[/]")
            .AddRow("SOURCE", Markup.Escape(s.Source))
            .AddRow("TARGET", Markup.Escape($"{s.Target} ({s.TargetRole})"))
            .AddRow("replication link", s.TargetRole == "slave" ? (s.LinkUp ? "up" : "[red]down[/]") : "none")
            .AddRow("initial sync", s.SyncInProgress ? Markup.Escape(SyncProgress(s)) : "finished or not started")
            .AddRow("lag", Format.Bytes(s.LagBytes))
            .AddRow("keys SOURCE", Keys(s.SourceKeys))
            .AddRow("keys TARGET", Keys(s.TargetKeys))
            .AddRow("instances", Markup.Escape(Instances(s)))
            .AddRow("waiting for", Markup.Escape(s.Waiting ?? "-"));

        var instances = new Table().Title("instances").AddColumns("instance", "application", "host", "pid", "side", "generation", "last report", "state");
        foreach (var i in s.Instances)
        {
            var state = i.LastReported > Stale ? "[yellow]stale[/]" : i.Draining ? "[yellow]draining[/]" : "live";
            instances.AddRow(Markup.Escape(i.InstanceId), Markup.Escape(i.Application), Markup.Escape(i.Host), i.ProcessId.ToString(CultureInfo.InvariantCulture),
                i.Side == RedisSide.Target ? "[green]Target[/]" : "[yellow]Source[/]", Format.Count(i.Generation), $"{Format.Duration(i.LastReported)} ago", state);
        }

        return new Rows(table, instances);
    }

    private static string Keys(IReadOnlyDictionary<int, long> keys) =>
        keys.Count == 0 ? "0" : string.Join(" ", keys.OrderBy(k => k.Key).Select(k => $"db{k.Key}={Format.Count(k.Value)}"));
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
