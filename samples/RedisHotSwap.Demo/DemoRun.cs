using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using RedisHotSwap.Testing;
using Spectre.Console;
using StackExchange.Redis;

namespace RedisHotSwap.Demo;

/// <summary>
/// Runs the demo: servers, data, instances, the coordinator and the operator; then checks every acknowledged write
/// and writes the report. Everything it starts is stopped and removed on every path, Ctrl+C included.
/// </summary>
internal static class DemoRun
{
    public static async Task<int> RunAsync(DemoSettings settings)
    {
        if (Console.IsOutputRedirected)
        {
            AnsiConsole.Profile.Width = 4096; // a log or a pipe: no wrapping
        }

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true; // clean up first; the finally blocks below end every process
            stop.Cancel();
        };
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stop.Cancel();
        });

        var secrets = new List<string>();
        var started = new Stack<IAsyncDisposable>();
        var work = Directory.CreateTempSubdirectory("redis-hotswap-demo-"); // owner-only: instance settings hold passwords
        try
        {
            return await RunAsync(settings, started, work.FullName, secrets, stop.Token);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            AnsiConsole.MarkupLine("[yellow]Interrupted:[/] stopping every process the demo started and removing its temporary files.");
            return 130;
        }
        catch (RedisConnectionException ex)
        {
            var message = secrets.Aggregate(ex.Message.Split('.')[0], (text, secret) => text.Replace(secret, "***", StringComparison.Ordinal));
            AnsiConsole.MarkupLine($"[red]The demo failed:[/] {Markup.Escape(message)}. Check that --source and --target name running servers and carry their passwords.");
            return 1;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            var message = secrets.Aggregate(ex.Message, (text, secret) => text.Replace(secret, "***", StringComparison.Ordinal));
            AnsiConsole.MarkupLine($"[red]The demo failed:[/] {Markup.Escape(message.ReplaceLineEndings(" "))} Run it again; if it fails the same way, report this line.");
            return 1;
        }
        finally
        {
            while (started.TryPop(out var resource))
            {
                try
                {
                    await resource.DisposeAsync();
                }
                catch (Exception ex) when (ex is InvalidOperationException or IOException or System.ComponentModel.Win32Exception)
                {
                    // Keep stopping the rest.
                }
            }

            work.Delete(recursive: true);
        }
    }

    private static async Task<int> RunAsync(DemoSettings settings, Stack<IAsyncDisposable> started, string work, List<string> secrets, CancellationToken cancellationToken)
    {
        AnsiConsole.MarkupLine("[bold]RedisHotSwap demo: a live migration[/]");
        var timeline = new Timeline();
        string sourceConfig, targetConfig;
        if (settings.Source is not null && settings.Target is not null)
        {
            (sourceConfig, targetConfig) = (settings.Source, settings.Target);
            secrets.AddRange(new[] { sourceConfig, targetConfig }.Select(c => ConfigurationOptions.Parse(c).Password).OfType<string>().Where(p => p.Length > 0));
        }
        else
        {
            if (await RedisServerSetup.EnsureAsync(cancellationToken) is { } setupProblem)
            {
                Console.Error.WriteLine(setupProblem);
                return 3;
            }

            var sourceServer = await RedisServerProcess.StartAsync(cancellationToken: cancellationToken);
            started.Push(sourceServer);
            var targetServer = await RedisServerProcess.StartAsync(cancellationToken: cancellationToken);
            started.Push(targetServer);
            secrets.Add(sourceServer.Password);
            secrets.Add(targetServer.Password);
            (sourceConfig, targetConfig) = (sourceServer.ConfigurationString, targetServer.ConfigurationString);
        }

        var seeded = await SeedAsync(sourceConfig, settings.Keys, timeline, cancellationToken);

        var instances = new List<InstanceProcess>();
        timeline.Enter("start instances");
        await AnsiConsole.Status().StartAsync($"starting {settings.Instances} application instances (processes of their own)", async _ =>
        {
            // All at once; each one started is kept for the cleanup even if another fails to start.
            var starting = Enumerable.Range(1, settings.Instances).Select(i => InstanceProcess.StartAsync(
                i, Directory.CreateDirectory(Path.Combine(work, $"instance-{i}")).FullName, sourceConfig, targetConfig, DemoSettings.MigrationId, DataSet.StringKeys(seeded), cancellationToken)).ToArray();
            try
            {
                await Task.WhenAll(starting);
            }
            finally
            {
                foreach (var instance in starting.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result))
                {
                    started.Push(instance);
                    instances.Add(instance);
                }
            }
        });
        timeline.Start();
        AnsiConsole.MarkupLine($"{settings.Instances} instances write and read through the SDK; starting [bold]redis-hotswap migrate[/]{(settings.Cutover is null ? string.Empty : $" --cutover {settings.Cutover}")}");

        var view = new LiveView(instances, timeline);
        var operatorTask = Task.CompletedTask;
        var coordinator = CoordinatorProcess.Start(sourceConfig, targetConfig, DemoSettings.MigrationId, settings.Instances, settings.Cutover, e =>
        {
            view.Coordinator(e);
            var phase = e["status"]?["phase"]?.GetValue<string>();
            if (phase is not null && timeline.Enter(phase) && phase == "Cutover" && settings.Cutover != "handoff")
            {
                // The operator's part, in the window procedure: TARGET is writable now, so flip each instance in turn.
                // In a handoff the coordinator's directive moves them; nobody flips anything.
                operatorTask = Task.Run(() => FlipAllAsync(instances, view, timeline, cancellationToken), cancellationToken);
            }
        });
        started.Push(coordinator);
        var exitCode = await view.RunAsync(coordinator.WaitAsync(cancellationToken), cancellationToken);
        await operatorTask;
        timeline.Enter("verify");

        var acknowledged = 0L;
        var errors = 0L;
        var writes = new List<(string Prefix, long Count, HashSet<long> Failed)>();
        var perInstance = new List<InstanceResult>();
        foreach (var instance in instances)
        {
            var result = await instance.StopAsync(cancellationToken);
            writes.AddRange(result.Writes);
            var count = result.Writes.Sum(w => w.Count - w.Failed.Count);
            acknowledged += count;
            errors += result.Errors;
            perInstance.Add(new InstanceResult(instance.Number, instance.Side, timeline.FlipAt(instance.Number), timeline.Seconds(instance.Samples.FirstOrDefault(s => s.Side == "Target")?.UnixMs), count, result.Errors, result.FirstError));
        }

        await using var sourceAdmin = await ConnectionMultiplexer.ConnectAsync(Admin(sourceConfig));
        await using var targetAdmin = await ConnectionMultiplexer.ConnectAsync(Admin(targetConfig));
        var missing = await Verification.MissingAsync(targetAdmin.GetDatabase(), writes, cancellationToken);
        timeline.End();
        var report = new DemoReport
        {
            Cutover = (settings.Cutover ?? coordinator.Last?["status"]?["cutover"]?.GetValue<string>() ?? "window").ToLowerInvariant(),
            HandoffPauseMs = coordinator.Last?["status"]?["handoffPauseMs"]?.GetValue<double>() is { } pause ? Math.Round(pause, 1) : null,
            LastInstanceSwitchMs = coordinator.Last?["status"]?["handoffLastSwitchMs"]?.GetValue<double>() is { } last ? Math.Round(last, 1) : null,
            Instances = settings.Instances,
            SeededKeys = seeded,
            AcknowledgedWrites = acknowledged,
            Errors = errors,
            MissingAcknowledgedWrites = missing,
            MaxWriteStallMs = Math.Round(instances.SelectMany(i => i.Samples).Select(s => s.MaxWriteMs).DefaultIfEmpty().Max(), 1),
            CoordinatorExitCode = exitCode,
            CoordinatorOutcome = Outcome(coordinator),
            Phases = timeline.Phases(),
            Keys = new Dictionary<string, IReadOnlyDictionary<string, long>>
            {
                ["source"] = await Verification.KeysPerDatabaseAsync(sourceAdmin),
                ["target"] = await Verification.KeysPerDatabaseAsync(targetAdmin),
            },
            PerInstance = perInstance,
        };
        Directory.CreateDirectory(settings.OutputDirectory);
        var json = Path.Combine(settings.OutputDirectory, "report.json");
        var png = Path.Combine(settings.OutputDirectory, "report.png");
        await report.WriteJsonAsync(json, cancellationToken);
        ReportChart.Save(png, instances, timeline);
        report.Print(json, png);
        return errors == 0 && missing == 0 && exitCode == 0 ? 0 : 1;
    }

    private static async Task<int> SeedAsync(string sourceConfig, int keys, Timeline timeline, CancellationToken cancellationToken)
    {
        await using var source = await ConnectionMultiplexer.ConnectAsync(Admin(sourceConfig));
        var existing = (await Verification.KeysPerDatabaseAsync(source)).Values.Sum();
        if (existing > 0)
        {
            AnsiConsole.MarkupLine($"SOURCE already holds {existing:N0} keys: using them as they are.");
            return 0;
        }

        timeline.Enter("seed");
        var clock = Stopwatch.StartNew();
        await AnsiConsole.Progress().Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn()).StartAsync(async context =>
        {
            var task = context.AddTask("seeding SOURCE", maxValue: keys);
            await DataSet.SeedAsync(source, keys, new SyncProgress<int>(n => task.Value = n), cancellationToken);
        });
        AnsiConsole.MarkupLine($"SOURCE holds {keys:N0} keys (strings, hashes, lists, sets, sorted sets, streams, keys with a TTL; databases 0 and 1), written in {clock.Elapsed.TotalSeconds:0.0} s");
        return keys;
    }

    private static async Task FlipAllAsync(List<InstanceProcess> instances, LiveView view, Timeline timeline, CancellationToken cancellationToken)
    {
        foreach (var instance in instances.Where(i => i.Side != "Target"))
        {
            view.Event($"operator: TARGET is writable; sets RedisHotSwap:UseTarget=true on instance {instance.Number}");
            timeline.Flipped(instance.Number);
            await instance.FlipAsync();

            // An operator's pace: one instance at a time, the next once this one reports TARGET (or after 10 s).
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            using var tick = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
            try
            {
                while (instance.Side != "Target" && await tick.WaitForNextTickAsync(timeout.Token))
                {
                }
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                view.Event($"instance {instance.Number} has not moved within 10 s; the operator goes on");
            }
        }
    }

    private static string Outcome(CoordinatorProcess coordinator)
    {
        var last = coordinator.Last;
        return last?["event"]?.GetValue<string>() switch
        {
            "done" => "done",
            "failed" => $"failed: {last["problem"]}",
            "refused" => $"refused: {string.Join(" ", last["problems"]?.AsArray().Select(p => p?.ToString()) ?? [])}",
            _ => string.Join(" ", coordinator.OtherLines.Take(3)),
        };
    }

    private static ConfigurationOptions Admin(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.AllowAdmin = true;
        return options;
    }

    /// <summary>Reports on the caller's thread (Progress&lt;T&gt; would post to the thread pool, out of order).</summary>
    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}

/// <summary>How one instance fared.</summary>
internal sealed record InstanceResult(int Instance, string Side, double? FlippedAtSeconds, double? SwitchedAtSeconds, long AcknowledgedWrites, long Errors, string? FirstError);
