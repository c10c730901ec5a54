using System.Diagnostics;
using System.Text.Json.Nodes;

namespace RedisHotSwap.Demo;

/// <summary>
/// <c>redis-hotswap migrate --json</c> in its own process, as an operator runs it: secrets in environment variables,
/// progress read from its JSON events.
/// </summary>
internal sealed class CoordinatorProcess : IAsyncDisposable
{
    private readonly Process process;
    private readonly List<string> lines = [];

    private CoordinatorProcess(Process process) => this.process = process;

    /// <summary>The last event the coordinator wrote.</summary>
    public JsonObject? Last { get; private set; }

    /// <summary>Lines that were not JSON events (there should be none).</summary>
    public IReadOnlyList<string> OtherLines => lines;

    /// <summary>Waits for the coordinator to end (its output read to the end); returns its exit code.</summary>
    public async Task<int> WaitAsync(CancellationToken cancellationToken)
    {
        await process.WaitForExitAsync(cancellationToken);
        return process.ExitCode;
    }

    public static CoordinatorProcess Start(string source, string target, string migrationId, int instances, string? cutover, Action<JsonObject> onEvent)
    {
        string[] arguments = [Path.Combine(AppContext.BaseDirectory, "redis-hotswap.dll"), "migrate", "--json", "--expect-instances", instances.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        if (cutover is not null)
        {
            // Only when the user chose a mode: otherwise the coordinator's own default stands.
            arguments = [.. arguments, "--cutover", cutover];
        }

        var info = new ProcessStartInfo("dotnet", arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.Environment["REDIS_HOTSWAP_SOURCE"] = source;
        info.Environment["REDIS_HOTSWAP_TARGET"] = target;
        info.Environment["REDIS_HOTSWAP_MIGRATION"] = migrationId;
        var coordinator = new CoordinatorProcess(new Process { StartInfo = info });
        coordinator.process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            if (e.Data.StartsWith('{') && JsonNode.Parse(e.Data) is JsonObject json)
            {
                coordinator.Last = json;
                onEvent(json);
            }
            else
            {
                lock (coordinator.lines)
                {
                    coordinator.lines.Add(e.Data);
                }
            }
        };
        coordinator.process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { Length: > 0 })
            {
                lock (coordinator.lines)
                {
                    coordinator.lines.Add(e.Data);
                }
            }
        };
        coordinator.process.Start();
        coordinator.process.BeginOutputReadLine();
        coordinator.process.BeginErrorReadLine();
        return coordinator;
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
}
