using RedisHotSwap.Protocol;

namespace RedisHotSwap.Coordinator;

/// <summary>One look at a migration: what the CLI prints, as a table or as JSON.</summary>
public sealed record MigrationStatus
{
    /// <summary>The migration's name.</summary>
    public required string MigrationId { get; init; }

    /// <summary>The phase reached.</summary>
    public required MigrationPhase Phase { get; init; }

    /// <summary>SOURCE, secrets masked.</summary>
    public required string Source { get; init; }

    /// <summary>TARGET, secrets masked.</summary>
    public required string Target { get; init; }

    /// <summary>TARGET's role: master or slave.</summary>
    public required string TargetRole { get; init; }

    /// <summary>Whether TARGET's replication link to SOURCE is up.</summary>
    public required bool LinkUp { get; init; }

    /// <summary>Whether TARGET's initial sync runs.</summary>
    public required bool SyncInProgress { get; init; }

    /// <summary>Bytes of the initial sync TARGET has read so far.</summary>
    public required long SyncReadBytes { get; init; }

    /// <summary>Total bytes of the initial sync while it runs; -1 when unknown (diskless sync, or no sync running).</summary>
    public long SyncTotalBytes { get; init; } = -1;

    /// <summary>Bytes of SOURCE's stream TARGET has yet to process (0 when not replicating).</summary>
    public required long LagBytes { get; init; }

    /// <summary>Keys per database on SOURCE.</summary>
    public required IReadOnlyDictionary<int, long> SourceKeys { get; init; }

    /// <summary>Keys per database on TARGET.</summary>
    public required IReadOnlyDictionary<int, long> TargetKeys { get; init; }

    /// <summary>Every live instance.</summary>
    public required IReadOnlyList<InstanceStatus> Instances { get; init; }

    /// <summary>What the coordinator waits for now, in words.</summary>
    public string? Waiting { get; init; }

    /// <summary>The cutover mode the migration runs; null until chosen.</summary>
    public CutoverMode? Cutover { get; init; }

    /// <summary>How TARGET gets SOURCE's data; null for a migration not started.</summary>
    public SyncMode? Sync { get; init; }

    /// <summary>Copy: how long writes were held at the switch, from the fence to the last instance on TARGET, in milliseconds.</summary>
    public double? CopyPauseMs { get; init; }

    /// <summary>Copy: what verification compared and what it found.</summary>
    public string? CopyVerified { get; init; }

    /// <summary>The last handoff's write pause (FAILOVER sent until the new primary answered as one), in milliseconds.</summary>
    public double? HandoffPauseMs { get; init; }

    /// <summary>The last handoff: from the promotion until the last instance had switched, in milliseconds.</summary>
    public double? HandoffLastSwitchMs { get; init; }

    /// <summary>Each phase's duration so far.</summary>
    public required IReadOnlyDictionary<MigrationPhase, TimeSpan> PhaseDurations { get; init; }
}

/// <summary>One live application instance as it last reported.</summary>
public sealed record InstanceStatus(string InstanceId, string Host, int ProcessId, string Application, RedisSide Side, long Generation, TimeSpan LastReported, RedisSide? Armed = null)
{
    /// <summary>Whether its connection to the side it left still finishes commands in flight.</summary>
    public bool Draining { get; init; }

    internal static InstanceStatus From(InstanceReport report, DateTimeOffset now) =>
        new(report.InstanceId, report.Host, report.ProcessId, report.Application, report.Side, report.Generation, now - report.ReportedAt, report.Armed) { Draining = report.Draining };
}
