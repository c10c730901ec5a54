using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>An application instance in its own process (tests/RedisHotSwap.TestApp), moved by editing its JSON settings file.</summary>
internal sealed class ExternalInstance : IAsyncDisposable
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

    private string SettingsFile => Path.Combine(folder.FullName, "appsettings.json");

    private string AcknowledgedFile => Path.Combine(folder.FullName, "acknowledged.txt");

    public static async Task<ExternalInstance> StartAsync(Dictionary<string, string?> settings, string load = "write")
    {
        var folder = Directory.CreateTempSubdirectory("redis-hotswap-instance-");
        var instance = new ExternalInstance(new Process(), folder, new Dictionary<string, string?>(settings));
        await instance.WriteSettingsAsync();
        var app = Path.Combine(AppContext.BaseDirectory, "RedisHotSwap.TestApp.dll");
        instance.process.StartInfo = new ProcessStartInfo("dotnet", [app, instance.SettingsFile, instance.AcknowledgedFile, load])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        instance.process.Start();
        var ready = await instance.process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("ready", ready);
        return instance;
    }

    public int ProcessId => process.Id;

    /// <summary>What an operator does: edit the instance's settings file.</summary>
    public Task SetUseTargetAsync(bool value)
    {
        settings["RedisHotSwap:UseTarget"] = value ? "true" : "false";
        return WriteSettingsAsync();
    }

    /// <summary>Stops the writers; returns every acknowledged write and the number of errors the instance saw.</summary>
    public async Task<((string Key, long Value)[] Acknowledged, int Errors, string Output)> StopAsync()
    {
        await process.StandardInput.WriteLineAsync("stop");
        var output = await process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync();
        var summary = output.Split('\n').First(l => l.StartsWith("acknowledged ", StringComparison.Ordinal)).Split(' ');
        var writes = (await File.ReadAllLinesAsync(AcknowledgedFile))
            .Select(l => l.Split('='))
            .Select(p => (p[0], long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)))
            .ToArray();
        return (writes, int.Parse(summary[3], System.Globalization.CultureInfo.InvariantCulture), output);
    }

    /// <summary>Stops a "consistency" load; returns what the server must hold and what the instance saw.</summary>
    public async Task<CheckedRun> StopCheckedAsync()
    {
        await process.StandardInput.WriteLineAsync("stop");
        var output = await process.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync();
        var summary = output.Split('\n').First(l => l.StartsWith("acknowledged ", StringComparison.Ordinal)).Split(' ');
        var slow = output.Split('\n').Where(l => l.StartsWith("slow ", StringComparison.Ordinal)).Select(l => l.Split(' '))
            .Select(p => (DateTimeOffset.FromUnixTimeMilliseconds(long.Parse(p[1], CultureInfo.InvariantCulture)), double.Parse(p[2], CultureInfo.InvariantCulture)))
            .ToArray();
        return new CheckedRun(
            await File.ReadAllLinesAsync(AcknowledgedFile),
            long.Parse(summary[1], CultureInfo.InvariantCulture),
            int.Parse(summary[3], CultureInfo.InvariantCulture),
            int.Parse(summary[5], CultureInfo.InvariantCulture),
            double.Parse(summary[7], CultureInfo.InvariantCulture),
            slow,
            output);
    }

    /// <summary>A crash: no clean shutdown, no farewell to the coordinator.</summary>
    public void Kill() => process.Kill(entireProcessTree: true);

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }

        process.Dispose();
        folder.Delete(recursive: true);
    }

    // Written whole to a temporary file and moved into place, so the watcher never reads half a file.
    private async Task WriteSettingsAsync()
    {
        var json = JsonSerializer.Serialize(new { RedisHotSwap = settings.ToDictionary(p => p.Key["RedisHotSwap:".Length..], p => p.Value) });
        var temporary = SettingsFile + ".tmp";
        await File.WriteAllTextAsync(temporary, json);
        File.Move(temporary, SettingsFile, overwrite: true);
    }
}

/// <summary>What a "consistency" instance saw: the expected server contents, and every error and violation.</summary>
internal sealed record CheckedRun(string[] Expected, long Writes, int Errors, int Violations, double MaxLatencyMs, (DateTimeOffset At, double Ms)[] Slow, string Output);
