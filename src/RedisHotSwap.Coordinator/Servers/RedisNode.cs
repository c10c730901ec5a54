using System.Net;
using RedisHotSwap.Configuration;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Servers;

/// <summary>The coordinator's admin connection to one side.</summary>
internal sealed class RedisNode : IAsyncDisposable
{
    private RedisNode(string name, string configuration, ConfigurationOptions options, ConnectionMultiplexer connection)
    {
        Name = name;
        Configuration = configuration;
        Options = options;
        Connection = connection;
        var endpoint = connection.GetEndPoints()[0];
        Server = connection.GetServer(endpoint);
        IsCluster = Server.ServerType == ServerType.Cluster;
        if (IsCluster && Primaries is [var primary, ..])
        {
            // The node the server-wide questions (INFO, CONFIG) go to: a primary, never a replica of the cluster.
            Server = primary;
            endpoint = primary.EndPoint;
        }

        (Host, Port) = endpoint switch
        {
            DnsEndPoint dns => (dns.Host, dns.Port),
            IPEndPoint ip => (ip.Address.ToString(), ip.Port),
            _ => (endpoint.ToString() ?? string.Empty, 0),
        };
    }

    /// <summary>SOURCE or TARGET.</summary>
    public string Name { get; }

    /// <summary>The configuration string, password included: never shown, see <see cref="Display"/>.</summary>
    internal string Configuration { get; }

    internal ConfigurationOptions Options { get; }

    /// <summary>The configuration with secrets masked.</summary>
    public string Display => Redaction.Redact(Configuration);

    /// <summary>The host as the coordinator reaches it (and as TARGET is told to reach SOURCE).</summary>
    public string Host { get; }

    /// <summary>The port.</summary>
    public int Port { get; }

    internal ConnectionMultiplexer Connection { get; }

    internal IServer Server { get; }

    /// <summary>Whether this side is a Redis Cluster (then <see cref="Server"/> is one of its primaries).</summary>
    internal bool IsCluster { get; }

    /// <summary>The servers that hold this side's data: every primary of a cluster, or the one server.</summary>
    internal IReadOnlyList<IServer> Primaries =>
        IsCluster ? [.. Connection.GetServers().Where(s => !s.IsReplica).OrderBy(s => s.EndPoint.ToString(), StringComparer.Ordinal)] : [Server];

    internal IDatabase Database => Connection.GetDatabase();

    /// <summary>Connects with admin commands enabled; one clear line when it cannot.</summary>
    /// <exception cref="PreflightRefusedException">The server is unreachable or refuses the credentials.</exception>
    public static async Task<RedisNode> ConnectAsync(string name, string configuration, CancellationToken cancellationToken)
    {
        if (configuration.Contains("://", StringComparison.Ordinal))
        {
            throw new PreflightRefusedException($"{name} is given as a URI ({Redaction.Redact(configuration)}); give it as a StackExchange.Redis configuration string, 'host:port,password=...'.");
        }

        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(configuration);
        }
        catch (ArgumentException ex)
        {
            throw new PreflightRefusedException($"{name} is not a valid StackExchange.Redis configuration string ({Redaction.Scrub(ex.Message, configuration)}); give it as 'host:port,password=...'.");
        }

        if (options.EndPoints.Count == 0)
        {
            throw new PreflightRefusedException($"{name} ({Redaction.Redact(configuration)}) must name exactly one server; give one 'host:port'.");
        }

        var admin = options.Clone();
        admin.AllowAdmin = true;
        admin.AbortOnConnectFail = true;
        admin.ConnectRetry = 1; // a refusal (credentials, TLS) is said once, within connectTimeout, not after every retry
        admin.ClientName = ClientNames.Coordinator; // told apart from the applications' clients before a promotion
        try
        {
            var connection = await ConnectionMultiplexer.ConnectAsync(admin).WaitAsync(cancellationToken).ConfigureAwait(false);
            var node = new RedisNode(name, configuration, options, connection);
            if (options.EndPoints.Count > 1 && !node.IsCluster)
            {
                await node.DisposeAsync().ConfigureAwait(false);
                throw new PreflightRefusedException($"{name} ({Redaction.Redact(configuration)}) names {options.EndPoints.Count} servers that are not one Redis Cluster; give one 'host:port' (several only for the nodes of a cluster).");
            }

            return node;
        }
        catch (RedisConnectionException ex)
        {
            var auth = ex.Message.Contains("AUTH", StringComparison.OrdinalIgnoreCase) || ex.Message.Contains("WRONGPASS", StringComparison.OrdinalIgnoreCase);
            throw new PreflightRefusedException(options.Ssl && !ex.Message.Contains("WRONGPASS", StringComparison.OrdinalIgnoreCase)
                ? $"{name} ({Redaction.Redact(configuration)}) did not complete a TLS handshake (ssl=true); check that the server serves TLS on that port, or remove ssl=true for a plain one."
                : auth
                ? $"{name} ({Redaction.Redact(configuration)}) rejected the credentials; check the password (and user) in its configuration string."
                : $"{name} ({Redaction.Redact(configuration)}) is unreachable; check that it runs and that host and port are right.");
        }
    }

    /// <summary>Told of every command that changes this server, with the reason (secrets masked): the audit trail.</summary>
    internal Action<string>? Audit { get; set; }

    /// <summary>Asked before every change to this server; throws when the coordinator may no longer change it (its lease is lost).</summary>
    internal Action? Guard { get; set; }

    /// <summary>
    /// Asked before every undo (a setting put back, a pause lifted), with what would stay as it is: throws once another
    /// coordinator may hold the lease, whose fence the undo would lift. An undo is not stopped by <see cref="Guard"/>:
    /// a renewal that failed while the lease is still this coordinator's lets it clean up after itself.
    /// </summary>
    internal Action<string>? UndoGuard { get; set; }

    /// <summary>Reads <c>INFO</c> (all sections).</summary>
    public async Task<ServerInfo> InfoAsync() =>
        ServerInfo.Parse((string)(await Server.ExecuteAsync("INFO", "everything").ConfigureAwait(false))!);

    /// <summary>Reads one section of <c>INFO</c>: cheaper, for the checks made while writes are held.</summary>
    internal async Task<ServerInfo> InfoAsync(string section) =>
        ServerInfo.Parse((string)(await Server.ExecuteAsync("INFO", section).ConfigureAwait(false))!);

    /// <summary>
    /// Reads data, or returns <paramref name="whileLoading"/> while the server loads its dataset (a replica does
    /// during its initial sync, and refuses reads with LOADING).
    /// </summary>
    internal async Task<T> ReadAsync<T>(Func<IDatabase, Task<T>> read, T whileLoading)
    {
        try
        {
            return await read(Database).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Kind == RedisErrorKind.Loading)
        {
            return whileLoading;
        }
    }

    /// <summary>One section of <c>INFO</c> from every primary (<see cref="Primaries"/>), each with its server.</summary>
    internal async Task<IReadOnlyList<(IServer Server, ServerInfo Info)>> PrimariesInfoAsync(string section)
    {
        var infos = new List<(IServer, ServerInfo)>();
        foreach (var primary in Primaries)
        {
            infos.Add((primary, ServerInfo.Parse((string)(await primary.ExecuteAsync("INFO", section).ConfigureAwait(false))!)));
        }

        return infos;
    }

    /// <summary>Keys per database, added up over every primary.</summary>
    internal async Task<IReadOnlyDictionary<int, long>> KeysAsync() =>
        (await PrimariesInfoAsync("keyspace").ConfigureAwait(false))
            .SelectMany(p => p.Info.Keys)
            .GroupBy(d => d.Key)
            .ToDictionary(g => g.Key, g => g.Sum(d => d.Value));

    /// <summary>Reads <c>CLIENT LIST</c>: every connection of the server, one line each.</summary>
    internal async Task<string> ClientListAsync() => (string)(await Server.ExecuteAsync("CLIENT", "LIST").ConfigureAwait(false))!;

    internal async Task<string?> ConfigGetAsync(string key)
    {
        var pairs = await Server.ConfigGetAsync(key).ConfigureAwait(false);
        return pairs.Length == 0 ? null : pairs[0].Value;
    }

    /// <summary>
    /// <c>CONFIG SET</c>, recorded in the audit trail with its reason; a secret's value is never shown. An
    /// <paramref name="undo"/> (it only puts back what the coordinator changed) asks <see cref="UndoGuard"/> instead of <see cref="Guard"/>.
    /// </summary>
    internal async Task ConfigSetAuditedAsync(string key, string value, string reason, bool undo = false)
    {
        var shown = key is "masterauth" or "requirepass" && value.Length > 0 ? "***" : $"'{value}'";
        if (undo)
        {
            UndoGuard?.Invoke($"{Name}'s {key} as it was (not put back to {shown})");
        }
        else
        {
            Guard?.Invoke();
        }

        await Server.ConfigSetAsync(key, value).ConfigureAwait(false);
        Audit?.Invoke($"{Name}: CONFIG SET {key} {shown} ({reason})");
    }

    /// <summary>A command that changes the server, recorded in the audit trail with its reason.</summary>
    internal async Task<RedisResult> ExecuteAuditedAsync(string reason, string command, params object[] args)
    {
        Guard?.Invoke();
        return await SendAuditedAsync(reason, command, args).ConfigureAwait(false);
    }

    /// <summary>
    /// A command that only undoes what the coordinator changed (lifting its own pause), recorded in the audit trail;
    /// not sent once another coordinator may hold the lease (<see cref="UndoGuard"/>, told that <paramref name="stays"/>).
    /// </summary>
    internal async Task<RedisResult> ExecuteUndoAuditedAsync(string stays, string reason, string command, params object[] args)
    {
        UndoGuard?.Invoke(stays);
        return await SendAuditedAsync(reason, command, args).ConfigureAwait(false);
    }

    private async Task<RedisResult> SendAuditedAsync(string reason, string command, object[] args)
    {
        var result = await Server.ExecuteAsync(command, args).ConfigureAwait(false);
        Audit?.Invoke($"{Name}: {string.Join(' ', args.Prepend(command))} ({reason})");
        return result;
    }

    /// <summary><c>CONFIG REWRITE</c> where the server has a configuration file; false where it has none.</summary>
    internal async Task<bool> RewriteConfigAsync(string reason)
    {
        try
        {
            await ExecuteAuditedAsync(reason, "CONFIG", "REWRITE").ConfigureAwait(false);
            return true;
        }
        catch (RedisServerException)
        {
            Audit?.Invoke($"{Name}: no configuration file to rewrite; a restart loses what was set ({reason})");
            return false;
        }
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync() => await Connection.DisposeAsync().ConfigureAwait(false);
}
