using System.ComponentModel.DataAnnotations;

namespace RedisHotSwap.Coordinator;

/// <summary>What the coordinator migrates and how long it waits.</summary>
public sealed class CoordinatorOptions
{
    /// <summary>SOURCE's StackExchange.Redis configuration string (password included; never shown).</summary>
    [Required]
    public string Source { get; set; } = string.Empty;

    /// <summary>TARGET's StackExchange.Redis configuration string (password included; never shown).</summary>
    [Required]
    public string Target { get; set; } = string.Empty;

    /// <summary>The migration's name; applications set the same value as <c>RedisHotSwap:MigrationId</c>.</summary>
    [Required]
    [RegularExpression(RedisHotSwap.Protocol.MigrationKeys.IdPattern, ErrorMessage = RedisHotSwap.Protocol.MigrationKeys.IdRule)]
    public string MigrationId { get; set; } = string.Empty;

    /// <summary>
    /// Lets <c>abort</c> go ahead when keys were changed on TARGET during the writable window (created, updated or
    /// deleted there): it counts them first, and without this option refuses while the count is not zero.
    /// </summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool DiscardTargetWrites { get; set; }

    /// <summary>Lets preflight accept a TARGET that holds data, which <c>REPLICAOF</c> erases.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool AllowTargetData { get; set; }

    /// <summary>How many live instances must report before the cutover can end; guards against applications that never set MigrationId.</summary>
    /// <value>The default value is 1.</value>
    [Range(0, 100_000)]
    public int ExpectedInstances { get; set; } = 1;

    /// <summary>How far (bytes of SOURCE's stream) TARGET may trail before the writable window opens.</summary>
    /// <value>The default value is 64 KiB.</value>
    [Range(0, long.MaxValue)]
    public long MaxLagBytes { get; set; } = 64 * 1024;

    /// <summary>How long the initial sync may take.</summary>
    /// <value>The default value is 30 minutes.</value>
    [Range(typeof(TimeSpan), "00:00:00.001", "7.00:00:00", ErrorMessage = "must be between 1 ms and 7 days.")]
    public TimeSpan SyncTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>How long to wait for every instance to move (to TARGET in the cutover, back to SOURCE in an abort).</summary>
    /// <value>The default value is 30 minutes.</value>
    [Range(typeof(TimeSpan), "00:00:00.001", "7.00:00:00", ErrorMessage = "must be between 1 ms and 7 days.")]
    public TimeSpan InstancesTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>How long SOURCE's writes stay paused while TARGET consumes the rest of its stream before promotion.</summary>
    /// <value>The default value is 30 seconds.</value>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:10:00", ErrorMessage = "must be between 1 ms and 10 minutes.")]
    public TimeSpan PromotionTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Told of every command that changes a server (<c>CONFIG SET</c>, <c>REPLICAOF</c>, <c>CLIENT PAUSE</c>, ...), one line
    /// each: its time (ISO-8601, UTC) first, then the server, the command and its reason; secrets masked.
    /// </summary>
    public Action<string>? Audit { get; set; }

    /// <summary>
    /// Lets a promotion (or a handoff) go ahead while the side giving up the primary role has clients that are neither
    /// registered instances, replicas nor a coordinator (<c>CLIENT LIST</c>), or while their list cannot be read; their
    /// writes fail there afterwards. In copy mode: lets the copy and its cutover go ahead while SOURCE has such clients
    /// (their writes go untracked) or cannot list them.
    /// </summary>
    /// <value>The default value is <see langword="false"/>: the promotion (or the copy) stops, naming each such client.</value>
    public bool AllowUnknownClients { get; set; }

    /// <summary>How the cutover moves the instances.</summary>
    /// <value>The default value is <see cref="CutoverMode.Auto"/>: a handoff when both servers support it.</value>
    public CutoverMode Cutover { get; set; } = CutoverMode.Auto;

    /// <summary>
    /// In a handoff, the longest SOURCE's writes may be held while TARGET takes the last of its stream
    /// (<c>FAILOVER ... TIMEOUT</c>); past it the handoff is called off and writes resume on SOURCE.
    /// </summary>
    /// <value>The default value is 2 seconds.</value>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00", ErrorMessage = "must be between 10 ms and 1 minute.")]
    public TimeSpan MaxPause { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How TARGET gets SOURCE's data.</summary>
    /// <value>The default value is <see cref="SyncMode.Replication"/>.</value>
    public SyncMode Sync { get; set; } = SyncMode.Replication;

    /// <summary>Copy: how many keys verification compares before the switch; 0 compares every key.</summary>
    /// <value>The default value is 0: every key.</value>
    [Range(0, long.MaxValue)]
    public long VerifySample { get; set; }

    /// <summary>Copy: keys estimated larger than this many bytes are copied in chunks and renamed into place.</summary>
    /// <value>The default value is 8 MiB.</value>
    [Range(1024, long.MaxValue)]
    public long BigKeyBytes { get; set; } = 8L << 20;

    /// <summary>Copy: which connections carry the copy's commands.</summary>
    /// <value>The default value is <see cref="CopyConnections.Own"/>.</value>
    public CopyConnections CopyConnections { get; set; } = CopyConnections.Own;

    /// <summary>How often the servers and instances are read while waiting.</summary>
    /// <value>The default value is 250 milliseconds.</value>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00", ErrorMessage = "must be between 10 ms and 1 minute.")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(250);
}
