using System.Globalization;

namespace RedisHotSwap.Coordinator.Servers;

/// <summary>The fields of <c>INFO</c> the coordinator decides on, read from one reply.</summary>
internal sealed class ServerInfo
{
    private readonly Dictionary<string, string> fields;

    private ServerInfo(Dictionary<string, string> fields) => this.fields = fields;

    /// <summary><c>master</c> or <c>slave</c>.</summary>
    public string Role => Text("role");

    /// <summary>Whether this server replicates another.</summary>
    public bool IsReplica => Role == "slave";

    /// <summary>The primary's host, for a replica.</summary>
    public string MasterHost => Text("master_host");

    /// <summary>The primary's port, for a replica.</summary>
    public int MasterPort => (int)Number("master_port");

    /// <summary>Whether a replica's link to its primary is up.</summary>
    public bool LinkUp => Text("master_link_status") == "up";

    /// <summary>Whether a replica's initial sync is still running.</summary>
    public bool SyncInProgress => Number("master_sync_in_progress") != 0;

    /// <summary>Bytes of the initial sync a replica has read, while it runs.</summary>
    public long SyncReadBytes => Number("master_sync_read_bytes");

    /// <summary>Total bytes of the initial sync, while it runs (-1 when unknown, as with diskless sync).</summary>
    public long SyncTotalBytes => fields.ContainsKey("master_sync_total_bytes") ? Number("master_sync_total_bytes") : -1;

    /// <summary>How much of its primary's stream a replica has processed.</summary>
    public long ReplicaOffset => Number("slave_repl_offset");

    /// <summary>The replication offset this server has produced (a primary) or reached (a replica).</summary>
    public long MasterOffset => Number("master_repl_offset");

    /// <summary>The replication id of this server's data history; a replica's changes when it full-resyncs.</summary>
    public string ReplicationId => Text("master_replid");

    /// <summary>The replication id this server had before its last promotion (its former primary's), or zeros.</summary>
    public string PreviousReplicationId => Text("master_replid2");

    /// <summary>Whether the last background save succeeded.</summary>
    public bool LastSaveSucceeded => Text("rdb_last_bgsave_status") == "ok";

    /// <summary>How many replicas are connected to this primary.</summary>
    public int ConnectedReplicas => (int)Number("connected_slaves");

    /// <summary>How many replicas this primary counts as good for min-replicas-to-write.</summary>
    public int GoodReplicas => (int)Number("min_slaves_good_slaves");

    /// <summary>Whether the server counts its good replicas (<c>min-replicas-to-write</c> and <c>min-replicas-max-lag</c> both set).</summary>
    public bool ChecksReplicas => fields.ContainsKey("min_slaves_good_slaves");

    /// <summary>How many full resyncs this primary has served.</summary>
    public long FullSyncs => Number("sync_full");

    /// <summary>The server's identity for this process lifetime.</summary>
    public string RunId => Text("run_id");

    /// <summary>The server's version.</summary>
    public Version Version => Version.TryParse(Text("redis_version"), out var v) ? v : new Version(0, 0);

    /// <summary>Bytes of memory in use.</summary>
    public long UsedMemory => Number("used_memory");

    /// <summary>Whether a background save is running.</summary>
    public bool SaveInProgress => Number("rdb_bgsave_in_progress") != 0;

    /// <summary>The port this server listens on.</summary>
    public int TcpPort => (int)Number("tcp_port");

    /// <summary>A FAILOVER's progress on this primary: <c>no-failover</c>, <c>waiting-for-sync</c> or <c>failover-in-progress</c>.</summary>
    public string FailoverState => Text("master_failover_state");

    /// <summary>The replicas connected to this primary, as it lists them: address, state, offset, seconds since its last acknowledgement.</summary>
    public IReadOnlyList<(string Ip, int Port, string State, long Offset, long Lag)> Replicas =>
        fields.Where(f => f.Key.StartsWith("slave", StringComparison.Ordinal) && int.TryParse(f.Key.AsSpan(5), out _))
            .Select(f => f.Value.Split(',').Select(p => p.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal))
            .Select(p => (
                p.GetValueOrDefault("ip") ?? string.Empty,
                int.TryParse(p.GetValueOrDefault("port"), CultureInfo.InvariantCulture, out var port) ? port : 0,
                p.GetValueOrDefault("state") ?? string.Empty,
                long.TryParse(p.GetValueOrDefault("offset"), CultureInfo.InvariantCulture, out var offset) ? offset : 0,
                long.TryParse(p.GetValueOrDefault("lag"), CultureInfo.InvariantCulture, out var lag) ? lag : long.MaxValue))
            .ToArray();

    /// <summary>Keys per database, from <c>INFO keyspace</c>.</summary>
    public IReadOnlyDictionary<int, long> Keys =>
        fields.Where(f => f.Key.StartsWith("db", StringComparison.Ordinal) && int.TryParse(f.Key.AsSpan(2), out _))
            .ToDictionary(
                f => int.Parse(f.Key.AsSpan(2), CultureInfo.InvariantCulture),
                f => long.Parse(f.Value.Split(',')[0]["keys=".Length..], CultureInfo.InvariantCulture));

    /// <summary>All keys on the server.</summary>
    public long TotalKeys => Keys.Values.Sum();

    /// <summary>Parses the text of <c>INFO</c> (any sections).</summary>
    public static ServerInfo Parse(string info)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in info.Split('\n'))
        {
            var trimmed = line.TrimEnd('\r');
            var colon = trimmed.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && !trimmed.StartsWith('#'))
            {
                fields[trimmed[..colon]] = trimmed[(colon + 1)..];
            }
        }

        return new ServerInfo(fields);
    }

    private string Text(string key) => fields.TryGetValue(key, out var value) ? value : string.Empty;

    private long Number(string key) =>
        fields.TryGetValue(key, out var value) && long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
}
