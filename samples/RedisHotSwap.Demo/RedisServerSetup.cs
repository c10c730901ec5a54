using System.Diagnostics;

namespace RedisHotSwap.Demo;

/// <summary>Finds <c>redis-server</c>, or installs Debian's package when this process may (root, apt-get).</summary>
internal static class RedisServerSetup
{
    /// <summary>Returns null when redis-server is there (or was installed), else the one line to print.</summary>
    public static async Task<string?> EnsureAsync(CancellationToken cancellationToken)
    {
        if (Find("redis-server") is not null || Environment.GetEnvironmentVariable("REDIS_SERVER") is { Length: > 0 })
        {
            return null;
        }

        var aptGet = Find("apt-get");
        if (aptGet is null || Environment.UserName != "root")
        {
            return aptGet is null
                ? "redis-server is not installed: install Redis 7 or later (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_SERVER to its path, then run the demo again."
                : "redis-server is not installed: run 'sudo apt-get install -y redis-server' (or set REDIS_SERVER to its path), then run the demo again.";
        }

        Console.WriteLine("redis-server is not installed: installing Debian's package redis-server (apt-get install -y redis-server).");
        if (await RunAsync(aptGet, ["update", "-qq"], cancellationToken) != 0
            || await RunAsync(aptGet, ["install", "-y", "-qq", "redis-server"], cancellationToken) != 0
            || Find("redis-server") is null)
        {
            return "Installing redis-server failed: run 'apt-get update && apt-get install -y redis-server' to see why, then run the demo again.";
        }

        return null;
    }

    private static string? Find(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, program))
            .FirstOrDefault(File.Exists);

    private static async Task<int> RunAsync(string program, string[] arguments, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        await Task.WhenAll(output, errors);
        return process.ExitCode;
    }
}
