using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace RedisHotSwap.Testing;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port with a temporary directory, stopped and removed on dispose.
/// The binary is <c>redis-server</c> from PATH, or the path in the <c>REDIS_SERVER</c> environment variable.
/// </summary>
public sealed class RedisServerProcess : IAsyncDisposable
{
    private const int StartAttempts = 5;
    private readonly Process process;
    private readonly string directory;
    private int disposed;

    private RedisServerProcess(Process process, string directory, int port, string password)
    {
        this.process = process;
        this.directory = directory;
        Port = port;
        Password = password;
    }

    /// <summary>The loopback port the server listens on.</summary>
    public int Port { get; }

    /// <summary>The password the server requires (<c>requirepass</c>).</summary>
    public string Password { get; }

    /// <summary>The server's address as <c>127.0.0.1:port</c>.</summary>
    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>A StackExchange.Redis configuration string for this server, password included.</summary>
    public string ConfigurationString => $"{Endpoint},password={Password}";

    /// <summary>Starts a server and returns once it accepts connections.</summary>
    /// <param name="password">The password to require; a random one when null.</param>
    /// <param name="settings">Further redis.conf lines, such as <c>maxmemory 100mb</c>.</param>
    /// <param name="cancellationToken">Stops waiting for the server to be ready.</param>
    public static async Task<RedisServerProcess> StartAsync(string? password = null, IEnumerable<string>? settings = null, CancellationToken cancellationToken = default)
    {
        password ??= Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant();
        var extra = settings?.ToArray() ?? [];
        for (var attempt = 1; ; attempt++)
        {
            // A free port can be taken by someone else between our probe and the server's bind: try again then.
            var port = FreePort();
            // Owner-only (CreateTempSubdirectory makes it 0700), and removed on every path that does not return it:
            // its redis.conf holds the password.
            var directory = Directory.CreateTempSubdirectory("redis-hotswap-").FullName;
            try
            {
                return await StartOnceAsync(port, password, directory, extra, cancellationToken).ConfigureAwait(false);
            }
            catch (IOException) when (attempt < StartAttempts)
            {
                RemoveDirectory(directory);
            }
            catch
            {
                RemoveDirectory(directory);
                throw;
            }
        }
    }

    /// <summary>Stops the server (as a crash would: no save) and removes its directory; safe to call twice.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref disposed, 1) != 0)
        {
            return;
        }

        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync().ConfigureAwait(false);
        process.Dispose();
        RemoveDirectory(directory);
    }

    private static async Task<RedisServerProcess> StartOnceAsync(int port, string password, string directory, string[] settings, CancellationToken cancellationToken)
    {
        var config = Path.Combine(directory, "redis.conf");
        await WriteOwnerOnlyAsync(config, [
            "bind 127.0.0.1",
            $"port {port}",
            $"dir {directory}",
            $"requirepass {password}",
            "save \"\"",
            "appendonly no",
            "daemonize no",
            "protected-mode yes",
            "logfile \"\"",
            .. settings,
        ], cancellationToken).ConfigureAwait(false);

        var binary = Environment.GetEnvironmentVariable("REDIS_SERVER") is { Length: > 0 } path ? path : "redis-server";
        var info = new ProcessStartInfo(binary, config)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"Could not start {binary}.");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"redis-server was not found ({ex.Message}); install it (apt-get install -y redis-server) or set REDIS_SERVER to its path.", ex);
        }

        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new IOException($"redis-server on port {port} exited before it was ready: {output}"));
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (e.Data.Contains("Ready to accept connections", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            // Exited before its directory is removed, so that nothing writes into it meanwhile.
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
            process.Dispose();
            throw;
        }

        return new RedisServerProcess(process, directory, port, password);
    }

    // The file holds requirepass: readable by its owner only from the moment it exists.
    private static async Task WriteOwnerOnlyAsync(string path, IEnumerable<string> lines, CancellationToken cancellationToken)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var writer = new StreamWriter(path, options);
        await using (writer.ConfigureAwait(false))
        {
            foreach (var line in lines)
            {
                await writer.WriteLineAsync(line.AsMemory(), cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private static void RemoveDirectory(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Already gone.
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
