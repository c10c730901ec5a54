using System.Diagnostics;
using RedisHotSwap.Cli;
using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>Runs <c>redis-hotswap</c>, in this process or as its own, with the migration's secrets in environment variables.</summary>
internal static class CoordinatorCli
{
    /// <summary>The verb in this process, as the tool's entry point runs it; returns the exit code.</summary>
    public static Task<int> InvokeAsync(Migration migration, string migrationId, params string[] args) =>
        Commands.Build().Parse([.. args, "--source", migration.Source.ConfigurationString, "--target", migration.TargetConfiguration, "--migration", migrationId, "--poll-interval", "00:00:00.050"]).InvokeAsync();

    /// <summary>The tool as its own process; secrets passed in environment variables, as an operator would.</summary>
    public static Process Start(Migration migration, string migrationId, params string[] args) =>
        Start(new Dictionary<string, string> { ["REDIS_HOTSWAP_SOURCE"] = migration.Source.ConfigurationString, ["REDIS_HOTSWAP_TARGET"] = migration.TargetConfiguration }, migrationId, args);

    /// <summary>The tool as its own process with these environment variables (its sides, say, and what it trusts).</summary>
    public static Process Start(Dictionary<string, string> environment, string migrationId, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "redis-hotswap.dll"), .. args, "--migration", migrationId, "--poll-interval", "00:00:00.050"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        return Process.Start(info)!;
    }

    /// <summary>Runs the tool as its own process to completion; returns its exit code and everything it printed.</summary>
    public static Task<(int ExitCode, string Output)> RunAsync(Migration migration, string migrationId, params string[] args) =>
        RunAsync(Start(migration, migrationId, args), args);

    /// <summary>As <see cref="RunAsync(Migration, string, string[])"/>, with these environment variables.</summary>
    public static Task<(int ExitCode, string Output)> RunAsync(Dictionary<string, string> environment, string migrationId, params string[] args) =>
        RunAsync(Start(environment, migrationId, args), args);

    private static async Task<(int ExitCode, string Output)> RunAsync(Process started, string[] args)
    {
        using var process = started;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(2));
        }
        catch (TimeoutException)
        {
            // Never left behind; what it printed says where it was.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"redis-hotswap {string.Join(' ', args)} did not finish within 2 minutes; it printed:{Environment.NewLine}{await stdout}{await stderr}");
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>The coordinator as a library; used also as a second connection that only looks, as <c>redis-hotswap status</c> does.</summary>
    public static Task<MigrationCoordinator> ObserverAsync(Migration migration, string migrationId, Action<CoordinatorOptions>? configure = null, TimeProvider? time = null)
    {
        var options = new CoordinatorOptions
        {
            Source = migration.Source.ConfigurationString,
            Target = migration.TargetConfiguration,
            MigrationId = migrationId,
            PollInterval = TimeSpan.FromMilliseconds(50),
        };
        configure?.Invoke(options);
        return MigrationCoordinator.ConnectAsync(options, time: time);
    }

    /// <summary>Waits until the migration's state (kept in Redis) has reached <paramref name="phase"/>.</summary>
    public static async Task WaitForPhaseAsync(Migration migration, string migrationId, MigrationPhase phase)
    {
        await using var observer = await ObserverAsync(migration, migrationId);
        await Eventually.TrueAsync(async () => (await observer.StatusAsync()).Phase >= phase, $"phase {phase}", TimeSpan.FromSeconds(60));
    }
}
