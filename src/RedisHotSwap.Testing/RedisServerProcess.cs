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

    private RedisServerProcess(Process process, string directory, int port, string password, string? configurationString)
    {
        this.process = process;
        this.directory = directory;
        Port = port;
        Password = password;
        ConfigurationString = configurationString ?? $"{Endpoint},password={Password}";
    }

    /// <summary>The loopback port the server listens on.</summary>
    public int Port { get; }

    /// <summary>The password the server requires (<c>requirepass</c>).</summary>
    public string Password { get; }

    /// <summary>The server's address as <c>127.0.0.1:port</c>.</summary>
    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>
    /// A StackExchange.Redis configuration string for this server, password included; for a Sentinel, the one that
    /// reaches the primary it watches (<c>serviceName=...</c>).
    /// </summary>
    public string ConfigurationString { get; }

    /// <summary>Starts a server and returns once it accepts connections.</summary>
    /// <param name="password">The password to require; a random one when null.</param>
    /// <param name="settings">Further redis.conf lines, such as <c>maxmemory 100mb</c>.</param>
    /// <param name="port">The port to listen on (one from <see cref="ReservePort"/>, for a server that starts late); a free one when null.</param>
    /// <param name="cancellationToken">Stops waiting for the server to be ready.</param>
    public static Task<RedisServerProcess> StartAsync(string? password = null, IEnumerable<string>? settings = null, int? port = null, CancellationToken cancellationToken = default)
    {
        password ??= Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant();
        var extra = settings?.ToArray() ?? [];
        var server = new Launch(
            (listenOn, directory) => [.. Common(listenOn, directory, password), "save \"\"", "appendonly no", .. extra],
            Mode: null,
            ReadyMarker: "Ready to accept connections",
            ConfigurationString: null);
        return StartAsync(server, password, port, cancellationToken);
    }

    /// <summary>
    /// Starts Microsoft Garnet (<c>garnet-server</c>, a Redis-compatible server that refuses replication) with a
    /// password, and returns once it accepts connections. The binary is the one in <c>GARNET_SERVER</c>, or the
    /// <see cref="GarnetVersion"/> dotnet tool, installed on first use into a cache folder outside the repository.
    /// </summary>
    /// <param name="cancellationToken">Stops waiting for the server to be ready.</param>
    public static async Task<RedisServerProcess> StartGarnetAsync(CancellationToken cancellationToken = default)
    {
        var binary = await GarnetBinaryAsync(cancellationToken).ConfigureAwait(false);
        var password = Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant();

        // Its options go in a JSON file (owner-only: it holds the password), never on the command line, where ps shows them.
        var garnet = new Launch(
            (listenOn, directory) =>
            [
                System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["Port"] = listenOn,
                    ["Address"] = "127.0.0.1",
                    ["AuthenticationMode"] = "Password",
                    ["Password"] = password,
                    ["CheckpointDir"] = directory,
                    ["MemorySize"] = "1g",
                    ["IndexSize"] = "64m",
                }),
            ],
            Mode: null,
            ReadyMarker: "Ready to accept connections",
            ConfigurationString: null,
            Binary: binary,
            Arguments: config => ["--config-import-path", config]);
        return await StartAsync(garnet, password, port: null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The Garnet version <see cref="StartGarnetAsync"/> installs.</summary>
    public const string GarnetVersion = "2.2.8";

    private static readonly SemaphoreSlim GarnetInstall = new(1, 1);

    private static async Task<string> GarnetBinaryAsync(CancellationToken cancellationToken)
    {
        if (Environment.GetEnvironmentVariable("GARNET_SERVER") is { Length: > 0 } configured)
        {
            return configured;
        }

        var folder = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "redis-hotswap", $"garnet-{GarnetVersion}");
        var binary = Path.Combine(folder, OperatingSystem.IsWindows() ? "garnet-server.exe" : "garnet-server");
        await GarnetInstall.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!File.Exists(binary))
            {
                using var install = Process.Start(new ProcessStartInfo("dotnet", ["tool", "install", "--tool-path", folder, "garnet-server", "--version", GarnetVersion])
                {
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    UseShellExecute = false,
                })!;
                var output = await install.StandardOutput.ReadToEndAsync(cancellationToken).ConfigureAwait(false) + await install.StandardError.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
                await install.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
                if (install.ExitCode != 0 || !File.Exists(binary))
                {
                    throw new InvalidOperationException($"garnet-server {GarnetVersion} could not be installed (dotnet tool install --tool-path {folder} garnet-server --version {GarnetVersion}): {output.Trim().Split('\n')[^1]} Install it there, or set GARNET_SERVER to its path.");
                }
            }

            return binary;
        }
        finally
        {
            GarnetInstall.Release();
        }
    }

    /// <summary>
    /// Starts a Sentinel (<c>redis-server --sentinel</c>) that watches <paramref name="primary"/> as
    /// <paramref name="serviceName"/>, requiring the primary's password; its <see cref="ConfigurationString"/> names the service.
    /// </summary>
    public static Task<RedisServerProcess> StartSentinelAsync(RedisServerProcess primary, string serviceName = "hotswap", CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(primary);
        var sentinel = new Launch(
            (listenOn, directory) =>
            [
                .. Common(listenOn, directory, primary.Password),
                $"sentinel monitor {serviceName} 127.0.0.1 {primary.Port} 1",
                $"sentinel auth-pass {serviceName} {primary.Password}",
            ],
            Mode: "--sentinel",
            ReadyMarker: "+monitor master",
            ConfigurationString: listenOn => $"127.0.0.1:{listenOn},serviceName={serviceName},password={primary.Password}");
        return StartAsync(sentinel, primary.Password, port: null, cancellationToken);
    }

    private static async Task<RedisServerProcess> StartAsync(Launch launch, string password, int? port, CancellationToken cancellationToken)
    {
        for (var attempt = port is null ? 1 : StartAttempts; ; attempt++)
        {
            // A free port can be taken by someone else between our probe and the server's bind: try again then.
            var listenOn = port ?? FreePort();
            // Owner-only (CreateTempSubdirectory makes it 0700), and removed on every path that does not return it:
            // its redis.conf holds the password.
            var directory = Directory.CreateTempSubdirectory("redis-hotswap-").FullName;
            try
            {
                return await StartOnceAsync(launch, listenOn, password, directory, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Freezes the server (<c>SIGSTOP</c>): it holds every connection and answers nothing until <see cref="ResumeAsync"/>.</summary>
    public Task SuspendAsync() => SignalAsync("-STOP");

    /// <summary>Lets a frozen server go on (<c>SIGCONT</c>).</summary>
    public Task ResumeAsync() => SignalAsync("-CONT");

    private static string[] Common(int port, string directory, string password) =>
    [
        "bind 127.0.0.1",
        $"port {port}",
        $"dir {directory}",
        $"requirepass {password}",
        "daemonize no",
        "protected-mode yes",
        "logfile \"\"",
    ];

    /// <summary>A loopback port free now, for a server to be started on it later (a client may be pointed at it first).</summary>
    public static int ReservePort() => FreePort();

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

    private async Task SignalAsync(string signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", [signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]) { UseShellExecute = false })!;
        await kill.WaitForExitAsync().ConfigureAwait(false);
    }

    private static async Task<RedisServerProcess> StartOnceAsync(Launch launch, int port, string password, string directory, CancellationToken cancellationToken)
    {
        var config = Path.Combine(directory, launch.Binary is null ? "redis.conf" : "server.conf");
        await WriteOwnerOnlyAsync(config, launch.Lines(port, directory), cancellationToken).ConfigureAwait(false);

        var binary = launch.Binary ?? (Environment.GetEnvironmentVariable("REDIS_SERVER") is { Length: > 0 } path ? path : "redis-server");
        var info = new ProcessStartInfo(binary, launch.Arguments?.Invoke(config) ?? (launch.Mode is null ? [config] : [config, launch.Mode]))
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

            if (e.Data.Contains(launch.ReadyMarker, StringComparison.Ordinal))
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

        return new RedisServerProcess(process, directory, port, password, launch.ConfigurationString?.Invoke(port));
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

    // What to start: the configuration file's lines (given the port and the directory), the mode argument, the line of
    // output that says it is ready, and the configuration string clients use (null: host:port and the password); for
    // another server than redis-server, its binary and its arguments (given the configuration file's path).
    private sealed record Launch(
        Func<int, string, string[]> Lines, string? Mode, string ReadyMarker, Func<int, string>? ConfigurationString, string? Binary = null, Func<string, string[]>? Arguments = null);
}
