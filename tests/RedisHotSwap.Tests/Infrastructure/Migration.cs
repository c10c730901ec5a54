using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>A SOURCE and a TARGET redis-server (or a TARGET cluster) with passwords, and admin connections to each for checking.</summary>
internal sealed class Migration : IAsyncDisposable
{
    private readonly bool owner;

    private Migration(RedisServerProcess source, RedisServerProcess target, ConnectionMultiplexer sourceAdmin, ConnectionMultiplexer targetAdmin, RedisCluster? targetCluster = null, bool owner = true)
    {
        this.owner = owner;
        Source = source;
        Target = target;
        SourceAdmin = sourceAdmin;
        TargetAdmin = targetAdmin;
        TargetCluster = targetCluster;
    }

    public RedisServerProcess Source { get; }

    /// <summary>TARGET's server; for a cluster, its first node (<see cref="TargetCluster"/> has them all).</summary>
    public RedisServerProcess Target { get; }

    /// <summary>TARGET as a Redis Cluster, when it is one.</summary>
    public RedisCluster? TargetCluster { get; }

    /// <summary>What TARGET is given as, to the coordinator and the applications: the cluster's nodes, or the one server.</summary>
    public string TargetConfiguration => TargetCluster?.ConfigurationString ?? Target.ConfigurationString;

    public ConnectionMultiplexer SourceAdmin { get; }

    public ConnectionMultiplexer TargetAdmin { get; }

    /// <summary>
    /// The same two servers the other way round, for a migration back (SOURCE the server this one calls TARGET):
    /// a view that shares the servers and connections and disposes nothing.
    /// </summary>
    public Migration Back => new(Target, Source, TargetAdmin, SourceAdmin, owner: false);

    public IDatabase SourceDb => SourceAdmin.GetDatabase();

    public IDatabase TargetDb => TargetAdmin.GetDatabase();

    /// <summary>Two independent servers, or with <paramref name="replicate"/> TARGET a writable replica of SOURCE, in sync.</summary>
    public static async Task<Migration> StartAsync(bool replicate = false, string[]? targetSettings = null, string[]? sourceSettings = null, Func<Task<RedisServerProcess>>? startTarget = null)
    {
        // No 5 s wait before a diskless initial sync: tests replicate many times.
        var source = await RedisServerProcess.StartAsync(settings: ["repl-diskless-sync-delay 0", .. sourceSettings ?? []]);
        string[] replicating = replicate ? [$"masterauth {source.Password}", $"replicaof 127.0.0.1 {source.Port}", "replica-read-only no"] : [];
        RedisServerProcess target;
        try
        {
            target = startTarget is null
                ? await RedisServerProcess.StartAsync(settings: [.. replicating, "repl-diskless-sync-delay 0", .. targetSettings ?? []])
                : await startTarget();
        }
        catch
        {
            await source.DisposeAsync();
            throw;
        }

        var migration = new Migration(source, target, await AdminAsync(source.ConfigurationString), await AdminAsync(target.ConfigurationString));
        if (replicate)
        {
            await Eventually.TrueAsync(async () => (await migration.InfoAsync(target, "replication")).Contains("master_link_status:up"), "TARGET's replication link to come up");
            await migration.ReplicatedAsync();
        }

        return migration;
    }

    /// <summary>A SOURCE redis-server and, as TARGET, a Redis Cluster of <paramref name="nodes"/> primaries.</summary>
    public static async Task<Migration> StartToClusterAsync(int nodes = 3)
    {
        var source = await RedisServerProcess.StartAsync();
        RedisCluster cluster;
        try
        {
            cluster = await RedisCluster.StartAsync(nodes);
        }
        catch
        {
            await source.DisposeAsync();
            throw;
        }

        return new Migration(source, cluster.Nodes[0], await AdminAsync(source.ConfigurationString), await AdminAsync(cluster.ConfigurationString), cluster);
    }

    /// <summary>
    /// Returns once TARGET has every write SOURCE acknowledged so far: a marker written after them is confirmed by
    /// WAIT, and the stream is ordered. (After an initial sync the primary holds the stream until the replica's first
    /// REPLCONF ACK, up to a second later, so "link up" alone does not mean writes arrive.)
    /// </summary>
    public async Task ReplicatedAsync()
    {
        await SourceDb.StringSetAsync("__test:replicated", Guid.NewGuid().ToString());
        await Eventually.TrueAsync(async () => (long)(await SourceDb.ExecuteAsync("WAIT", 1, 200)) == 1, "TARGET to acknowledge SOURCE's writes");
    }

    public async Task<string> InfoAsync(RedisServerProcess server, string section)
    {
        var admin = server == Source ? SourceAdmin : TargetAdmin;
        return (string)(await admin.GetDatabase().ExecuteAsync("INFO", section))!;
    }

    public async Task<long> ConnectedClientsAsync(RedisServerProcess server)
    {
        var info = await InfoAsync(server, "clients");
        var line = info.Split('\n').First(l => l.StartsWith("connected_clients:", StringComparison.Ordinal));
        return long.Parse(line["connected_clients:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async Task<long> SubscribersAsync(RedisServerProcess server, string channel)
    {
        var admin = server == Source ? SourceAdmin : TargetAdmin;
        var reply = (RedisResult[])(await admin.GetDatabase().ExecuteAsync("PUBSUB", "NUMSUB", channel))!;
        return (long)reply[1];
    }

    // Each server is stopped even if something before it failed: a test must never leave a redis-server behind.
    public async ValueTask DisposeAsync()
    {
        if (!owner)
        {
            return;
        }

        try
        {
            await SourceAdmin.DisposeAsync();
            await TargetAdmin.DisposeAsync();
        }
        finally
        {
            try
            {
                await Source.DisposeAsync();
            }
            finally
            {
                await (TargetCluster?.DisposeAsync() ?? Target.DisposeAsync());
            }
        }
    }

    // The tests' own look at the servers, as an operator's tools: named as a coordinator's connection, so that the
    // coordinator's check for unknown clients before a promotion sees only the clients a test puts there.
    private static Task<ConnectionMultiplexer> AdminAsync(string configuration) =>
        ConnectionMultiplexer.ConnectAsync($"{configuration},allowAdmin=true,name={RedisHotSwap.Protocol.ClientNames.Coordinator}");
}
