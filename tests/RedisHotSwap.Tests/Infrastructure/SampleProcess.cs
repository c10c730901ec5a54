using System.Diagnostics;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>
/// A sample application (samples/{name}) run from its own build output, as a developer runs it, with settings in
/// environment variables; its output lines are read as they come, and it is killed on dispose.
/// </summary>
internal sealed class SampleProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly List<string> lines = [];
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Seen)> waiters = [];

    private SampleProcess(Process process) => this.process = process;

    public static SampleProcess Start(string name, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        // tests/RedisHotSwap.Tests/bin/{Configuration}/{tfm}/ → samples/{name}/bin/{Configuration}/{tfm}/ (built first: see the csproj).
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var root = output.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
        var folder = Path.Combine(root, "samples", name, "bin", output.Parent.Name, output.Name);
        var info = new ProcessStartInfo("dotnet", [Path.Combine(folder, $"{name}.dll"), .. args])
        {
            WorkingDirectory = folder, // where its appsettings.json is
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["Logging__Console__FormatterName"] = "simple";
        info.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        foreach (var (key, value) in environment)
        {
            info.Environment[key] = value;
        }

        var sample = new SampleProcess(new Process { StartInfo = info });
        sample.process.OutputDataReceived += (_, e) => sample.Received(e.Data);
        sample.process.ErrorDataReceived += (_, e) => sample.Received(e.Data);
        sample.process.Start();
        sample.process.BeginOutputReadLine();
        sample.process.BeginErrorReadLine();
        return sample;
    }

    public string Output
    {
        get
        {
            lock (lines)
            {
                return string.Join('\n', lines);
            }
        }
    }

    /// <summary>Returns the first line (already printed or to come) that contains <paramref name="text"/>.</summary>
    public Task<string> LineAsync(string text)
    {
        var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (lines)
        {
            if (lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } line)
            {
                return Task.FromResult(line);
            }

            waiters.Add((l => l.Contains(text, StringComparison.Ordinal), seen));
        }

        return seen.Task.WaitAsync(TimeSpan.FromSeconds(60));
    }

    /// <summary>Waits for the process to end by itself; returns its exit code.</summary>
    public async Task<int> ExitCodeAsync(TimeSpan timeout)
    {
        await process.WaitForExitAsync().WaitAsync(timeout);
        return process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync();
        process.Dispose();
    }

    private void Received(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (lines)
        {
            lines.Add(line);
            foreach (var waiter in waiters.Where(w => w.Match(line)).ToArray())
            {
                waiter.Seen.TrySetResult(line);
                waiters.Remove(waiter);
            }
        }
    }
}
