using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace RedisHotSwap.Testing;

/// <summary>
/// An application instance in its own process (<c>RedisHotSwap.TestApp</c>, beside the caller's assembly), configured
/// by a JSON settings file that it reloads on change, as an operator's edit would be. Its folder holds a password
/// (the settings), is readable by the owner only, and is removed on dispose.
/// </summary>
public sealed class ExternalInstance : IAsyncDisposable
{
    private readonly Process process;
    private readonly DirectoryInfo folder;
    private readonly Dictionary<string, string?> settings;

    private ExternalInstance(Process process, DirectoryInfo folder, Dictionary<string, string?> settings)
    {
        this.process = process;
        this.folder = folder;
        this.settings = settings;
    }

    /// <summary>The instance's operating-system process id.</summary>
    public int ProcessId => process.Id;

    private string SettingsFile => Path.Combine(folder.FullName, "appsettings.json");

    private string ExpectedFile => Path.Combine(folder.FullName, "expected.txt");

    // Written by the instance beside the expected file: the SDK's log (switches, directives), timestamped.
    private string LogFile => Path.Combine(folder.FullName, "instance.log");

    /// <summary>Starts an instance and returns once its load runs.</summary>
    /// <param name="settings">Configuration keys (<c>RedisHotSwap:Source</c>, ...) and values.</param>
    /// <param name="load"><c>write</c> (<see cref="WriteLoad"/>) or <c>consistency</c> (<see cref="ConsistencyLoad"/>), each with an optional <c>:N</c> for N loops (8 by default).</param>
    public static async Task<ExternalInstance> StartAsync(IReadOnlyDictionary<string, string?> settings, string load = "write")
    {
        var folder = Directory.CreateTempSubdirectory("redis-hotswap-instance-");
        var instance = new ExternalInstance(new Process(), folder, new Dictionary<string, string?>(settings));
        try
        {
            await instance.WriteSettingsAsync().ConfigureAwait(false);
            var app = Path.Combine(AppContext.BaseDirectory, "RedisHotSwap.TestApp.dll");
            instance.process.StartInfo = new ProcessStartInfo("dotnet", [app, instance.SettingsFile, instance.ExpectedFile, load])
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            instance.process.Start();
            var ready = await instance.process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
            if (ready != "ready")
            {
                throw new InvalidOperationException($"The instance did not start: it said '{ready}'.");
            }

            return instance;
        }
        catch
        {
            await instance.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>What an operator does: edit the instance's settings file.</summary>
    /// <param name="value">The new <c>UseTarget</c>.</param>
    public Task SetUseTargetAsync(bool value)
    {
        settings["RedisHotSwap:UseTarget"] = value ? "true" : "false";
        return WriteSettingsAsync();
    }

    /// <summary>What an operator's live reconfiguration does: replace the settings file whole, in one change.</summary>
    /// <param name="values">Every configuration key (<c>RedisHotSwap:Source</c>, ...) and its value, as <see cref="StartAsync"/> takes them.</param>
    public Task ReplaceSettingsAsync(IReadOnlyDictionary<string, string?> values)
    {
        settings.Clear();
        foreach (var (key, value) in values)
        {
            settings[key] = value;
        }

        return WriteSettingsAsync();
    }

    /// <summary>Stops a <c>write</c> load; returns every acknowledged write and the number of errors the instance saw.</summary>
    public async Task<((string Key, long Value)[] Acknowledged, int Errors, string Output)> StopAsync()
    {
        var (lines, summary, output) = await StopCoreAsync().ConfigureAwait(false);
        var writes = lines.Select(l => l.Split('=')).Select(p => (p[0], long.Parse(p[1], CultureInfo.InvariantCulture))).ToArray();
        return (writes, int.Parse(summary[3], CultureInfo.InvariantCulture), output);
    }

    /// <summary>Stops a <c>consistency</c> load; returns what the server must hold and what the instance saw.</summary>
    public async Task<CheckedRun> StopCheckedAsync()
    {
        var (lines, summary, output) = await StopCoreAsync().ConfigureAwait(false);
        var slow = output.Split('\n').Where(l => l.StartsWith("slow ", StringComparison.Ordinal)).Select(l => l.Split(' '))
            .Select(p => (DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(p[1], CultureInfo.InvariantCulture)), double.Parse(p[2], CultureInfo.InvariantCulture)))
            .ToArray();
        return new CheckedRun(
            lines,
            long.Parse(summary[1], CultureInfo.InvariantCulture),
            int.Parse(summary[3], CultureInfo.InvariantCulture),
            int.Parse(summary[5], CultureInfo.InvariantCulture),
            double.Parse(summary[7], CultureInfo.InvariantCulture),
            slow,
            output);
    }

    /// <summary>A crash: no clean shutdown, no farewell to the coordinator.</summary>
    public void Kill() => process.Kill(entireProcessTree: true);

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        if (!Directory.Exists(folder.FullName))
        {
            return; // disposed already: a test that stops instances as it goes disposes all of them again on its way out
        }

        try
        {
            if (process.StartInfo.FileName.Length > 0 && !process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            process.Dispose();
            folder.Delete(recursive: true);
        }
    }

    private async Task<(string[] Lines, string[] Summary, string Output)> StopCoreAsync()
    {
        await process.StandardInput.WriteLineAsync("stop").ConfigureAwait(false);
        var output = await process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60)).ConfigureAwait(false);
        await process.WaitForExitAsync().ConfigureAwait(false);
        var summary = output.Split('\n').First(l => l.StartsWith("acknowledged ", StringComparison.Ordinal)).Split(' ');
        var log = File.Exists(LogFile) ? await File.ReadAllTextAsync(LogFile).ConfigureAwait(false) : string.Empty;
        return (await File.ReadAllLinesAsync(ExpectedFile).ConfigureAwait(false), summary, $"{output}SDK log of process {process.Id}:\n{log}");
    }

    // Written whole to a temporary file (owner-only: it holds passwords) and moved into place, so the watcher never reads half a file.
    private async Task WriteSettingsAsync()
    {
        var json = JsonSerializer.Serialize(new { RedisHotSwap = settings.ToDictionary(p => p.Key["RedisHotSwap:".Length..], p => p.Value) });
        var temporary = SettingsFile + ".tmp";
        await File.WriteAllTextAsync(temporary, string.Empty).ConfigureAwait(false);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite); // before the password is in it
        }

        await File.WriteAllTextAsync(temporary, json).ConfigureAwait(false);
        File.Move(temporary, SettingsFile, overwrite: true);
    }
}

/// <summary>What a <c>consistency</c> instance saw.</summary>
/// <param name="Expected">What the server must hold, one <c>key=value</c> a line (see <see cref="ConsistencyLoad.MissingOnAsync"/>).</param>
/// <param name="Writes">Writes acknowledged.</param>
/// <param name="Errors">Exceptions the application saw.</param>
/// <param name="Violations">Reads older than an acknowledged write, and counters that went back.</param>
/// <param name="MaxLatencyMs">The longest any single command took.</param>
/// <param name="Slow">Every command over 5 ms, with when it ended.</param>
/// <param name="Output">What the instance printed, then its SDK log (timestamped, UTC).</param>
public sealed record CheckedRun(string[] Expected, long Writes, int Errors, int Violations, double MaxLatencyMs, (DateTimeOffset At, double Ms)[] Slow, string Output);
