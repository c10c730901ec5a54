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
    public string MigrationId { get; set; } = string.Empty;

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
    public TimeSpan SyncTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>How long to wait for every instance to move (to TARGET in the cutover, back to SOURCE in an abort).</summary>
    /// <value>The default value is 30 minutes.</value>
    public TimeSpan InstancesTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>How long SOURCE's writes stay paused while TARGET consumes the rest of its stream before promotion.</summary>
    /// <value>The default value is 30 seconds.</value>
    public TimeSpan PromotionTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the servers and instances are read while waiting.</summary>
    /// <value>The default value is 250 milliseconds.</value>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromMilliseconds(250);
}
