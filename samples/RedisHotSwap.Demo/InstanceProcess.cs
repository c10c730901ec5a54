using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RedisHotSwap.Demo;

/// <summary>
/// One application instance (samples/RedisHotSwap.Demo.Instance) in its own process, moved the way an operator
/// would: by editing its settings file. Its statistics lines are collected as they arrive.
/// </summary>
internal sealed class InstanceProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly string folder;
    private readonly JsonObject settings;
    private readonly TaskCompletionSource<JsonObject> done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock gate = new();
    private readonly List<Sample> samples = [];

    private InstanceProcess(int number, string folder, JsonObject settings)
    {
        Number = number;
        this.folder = folder;
        this.settings = settings;
        process = new Process
        {
            StartInfo = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "RedisHotSwap.Demo.Instance.dll"), SettingsFile, AcknowledgedFile])
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
    }

    public int Number { get; }

    public string Side { get; private set; } = "Source";

    public long Generation { get; private set; }

    public bool Flipped { get; private set; }

    public Sample? Last { get; private set; }

    public IReadOnlyList<Sample> Samples
    {
        get
        {
            lock (gate)
            {
                return [.. samples];
            }
        }
    }

    private string SettingsFile => Path.Combine(folder, "appsettings.json");

    private string AcknowledgedFile => Path.Combine(folder, "acknowledged.txt");

    /// <summary>Starts the instance; returns once it writes.</summary>
    /// <param name="number">Its number, 1 and up.</param>
    /// <param name="folder">A folder of its own (owner-only: its settings hold passwords).</param>
    /// <param name="source">SOURCE's configuration string.</param>
    /// <param name="target">TARGET's configuration string.</param>
    /// <param name="migrationId">The migration it reports to.</param>
    /// <param name="seedKeys">How many seeded string keys it may read.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    public static async Task<InstanceProcess> StartAsync(int number, string folder, string source, string target, string migrationId, int seedKeys, CancellationToken cancellationToken)
    {
        var settings = new JsonObject
        {
            ["RedisHotSwap"] = new JsonObject { ["Source"] = source, ["Target"] = target, ["UseTarget"] = false, ["MigrationId"] = migrationId },
            ["Demo"] = new JsonObject { ["Name"] = $"instance-{number}", ["SeedKeys"] = seedKeys },
        };
        var instance = new InstanceProcess(number, folder, settings);
        await instance.WriteSettingsAsync();
        instance.process.OutputDataReceived += (_, e) => instance.Received(e.Data);
        instance.process.ErrorDataReceived += (_, _) => { };
        instance.process.Start();
        instance.process.BeginOutputReadLine();
        instance.process.BeginErrorReadLine();
        try
        {
            await instance.ready.Task.WaitAsync(TimeSpan.FromMinutes(1), cancellationToken);
        }
        catch
        {
            await instance.DisposeAsync(); // started, never handed out: stopped here
            throw;
        }

        return instance;
    }

    /// <summary>What an operator does: sets RedisHotSwap:UseTarget in the instance's settings file.</summary>
    public Task FlipAsync()
    {
        Flipped = true;
        settings["RedisHotSwap"]!["UseTarget"] = true;
        return WriteSettingsAsync();
    }

    /// <summary>Stops the load; returns the acknowledged writes (prefix, count, failed numbers) and the errors it saw.</summary>
    public async Task<(IReadOnlyList<(string Prefix, long Count, HashSet<long> Failed)> Writes, long Errors, string? FirstError)> StopAsync(CancellationToken cancellationToken)
    {
        await process.StandardInput.WriteLineAsync("stop".AsMemory(), cancellationToken);
        var last = await done.Task.WaitAsync(TimeSpan.FromMinutes(1), cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        var writes = (await File.ReadAllLinesAsync(AcknowledgedFile, cancellationToken)).Select(line => line.Split(' ')).Select(parts =>
            (parts[0], long.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture),
             parts.Length > 2 && parts[2].Length > 0 ? parts[2].Split(',').Select(n => long.Parse(n, System.Globalization.CultureInfo.InvariantCulture)).ToHashSet() : [])).ToList();
        return (writes, last["errors"]!.GetValue<long>(), last["firstError"]?.GetValue<string>());
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            await process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }

        process.Dispose();
    }

    private void Received(string? line)
    {
        if (line is null)
        {
            ready.TrySetException(new InvalidOperationException($"Instance {Number} exited before it was ready."));
            done.TrySetException(new InvalidOperationException($"Instance {Number} exited before it reported."));
            return;
        }

        if (line == "ready")
        {
            ready.TrySetResult();
            return;
        }

        if (!line.StartsWith('{'))
        {
            return;
        }

        var json = JsonNode.Parse(line)!.AsObject();
        if (json["kind"]?.GetValue<string>() == "done")
        {
            done.TrySetResult(json);
            return;
        }

        var sample = JsonSerializer.Deserialize<Sample>(line, JsonSerializerOptions.Web)!;
        lock (gate)
        {
            samples.Add(sample);
        }

        Side = sample.Side;
        Generation = sample.Generation;
        Last = sample;
    }

    // Written whole and moved into place, so the application's file watcher never reads half a file.
    private async Task WriteSettingsAsync()
    {
        var temporary = SettingsFile + ".tmp";
        await File.WriteAllTextAsync(temporary, settings.ToJsonString());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        File.Move(temporary, SettingsFile, overwrite: true);
    }

    /// <summary>One statistics line from the instance: the last 200 ms.</summary>
    internal sealed record Sample(long UnixMs, string Side, long Generation, long Operations, long Errors, double MeanMs, double MaxMs, double MaxWriteMs);
}
