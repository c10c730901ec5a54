using StackExchange.Redis;

namespace RedisHotSwap.Testing;

/// <summary>
/// A Redis Cluster of <c>redis-server</c> primaries (<c>cluster-enabled yes</c>, no replicas) on free loopback ports,
/// the 16384 slots split between them; stopped and removed on dispose.
/// </summary>
public sealed class RedisCluster : IAsyncDisposable
{
    private const int Slots = 16384;

    private RedisCluster(RedisServerProcess[] nodes) => Nodes = nodes;

    /// <summary>The nodes, each a primary holding a share of the slots.</summary>
    public IReadOnlyList<RedisServerProcess> Nodes { get; }

    /// <summary>Every node's endpoint and the password: a StackExchange.Redis configuration string for the cluster.</summary>
    public string ConfigurationString => $"{string.Join(",", Nodes.Select(n => n.Endpoint))},password={Nodes[0].Password}";

    /// <summary>Starts <paramref name="size"/> nodes, joins them and returns once every node reports the cluster ok.</summary>
    public static async Task<RedisCluster> StartAsync(int size = 3, CancellationToken cancellationToken = default)
    {
        var password = Convert.ToHexString(Guid.NewGuid().ToByteArray()).ToLowerInvariant();
        var nodes = new List<RedisServerProcess>();
        try
        {
            for (var i = 0; i < size; i++)
            {
                // The bus port is set apart: the default (port + 10000) overflows for most ephemeral ports.
                nodes.Add(await RedisServerProcess.StartAsync(
                    password,
                    ["cluster-enabled yes", "cluster-config-file nodes.conf", $"cluster-port {RedisServerProcess.ReservePort()}", "cluster-node-timeout 5000"],
                    cancellationToken: cancellationToken).ConfigureAwait(false));
            }

            await FormAsync(nodes, cancellationToken).ConfigureAwait(false);
            return new RedisCluster([.. nodes]);
        }
        catch
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>Stops every node and removes its directory.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes)
        {
            await node.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task FormAsync(List<RedisServerProcess> nodes, CancellationToken cancellationToken)
    {
        var connections = new List<ConnectionMultiplexer>();
        try
        {
            foreach (var node in nodes)
            {
                connections.Add(await ConnectionMultiplexer.ConnectAsync($"{node.ConfigurationString},allowAdmin=true").ConfigureAwait(false));
            }

            var share = Slots / nodes.Count;
            for (var i = 0; i < nodes.Count; i++)
            {
                var last = i == nodes.Count - 1 ? Slots - 1 : ((i + 1) * share) - 1;
                var server = Server(connections[i], nodes[i]);
                await server.ExecuteAsync("CLUSTER", "ADDSLOTSRANGE", i * share, last).ConfigureAwait(false);
                var busPort = (int)(long)(await server.ExecuteAsync("CONFIG", "GET", "cluster-port").ConfigureAwait(false)).ToDictionary()["cluster-port"];
                if (i > 0)
                {
                    await Server(connections[0], nodes[0]).ExecuteAsync("CLUSTER", "MEET", "127.0.0.1", nodes[i].Port, busPort).ConfigureAwait(false);
                }
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            for (var i = 0; i < nodes.Count; i++)
            {
                var server = Server(connections[i], nodes[i]);
                while (true)
                {
                    var info = (string)(await server.ExecuteAsync("CLUSTER", "INFO").ConfigureAwait(false))!;
                    if (info.Contains("cluster_state:ok", StringComparison.Ordinal) && info.Contains($"cluster_known_nodes:{nodes.Count}", StringComparison.Ordinal))
                    {
                        break;
                    }

                    await Task.Delay(50, timeout.Token).ConfigureAwait(false); // polling the nodes' gossip; no event to wait on
                }
            }
        }
        finally
        {
            foreach (var connection in connections)
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static IServer Server(ConnectionMultiplexer connection, RedisServerProcess node) => connection.GetServer(node.Endpoint);

}
