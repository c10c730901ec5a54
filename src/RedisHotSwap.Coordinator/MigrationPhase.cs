namespace RedisHotSwap.Coordinator;

/// <summary>Where a migration stands. The order is the order of the procedure.</summary>
public enum MigrationPhase
{
    /// <summary>Nothing done yet.</summary>
    New = 0,

    /// <summary>TARGET was told to replicate SOURCE; the initial sync runs.</summary>
    Replicating = 1,

    /// <summary>TARGET is in sync and writable; instances are moving to it.</summary>
    Cutover = 2,

    /// <summary>Every instance is on TARGET; SOURCE's writes are paused while TARGET consumes the rest of its stream.</summary>
    Promoting = 3,

    /// <summary>TARGET is a primary; SOURCE was snapshotted.</summary>
    Promoted = 4,

    /// <summary>The migration was called off before promotion: instances on SOURCE, TARGET detached.</summary>
    Aborted = 5,

    /// <summary>Handoff: every instance connects ahead of time to the side that is to become the primary, traffic unchanged.</summary>
    Arming = 6,

    /// <summary>Handoff: writes are held while the primary role moves (FAILOVER); then every instance is told to move.</summary>
    HandingOff = 7,

    /// <summary>Handoff: SOURCE is the primary again, TARGET its replica, every instance on SOURCE; <c>migrate</c> hands over again.</summary>
    RolledBack = 8,

    /// <summary>Ended for good on the side that was primary; the other stopped replicating and was snapshotted.</summary>
    Finished = 9,

    /// <summary>Copy: instances track their writes; every key of SOURCE is being copied to TARGET.</summary>
    Backfilling = 10,

    /// <summary>Copy: the keys written since are copied again, round after round, until few are left.</summary>
    Converging = 11,

    /// <summary>Copy: instances hold their writes while the last keys are copied and verified.</summary>
    Fencing = 12,

    /// <summary>Copy: verified; every instance is told to move to TARGET, where its held writes run.</summary>
    Switching = 13,

    /// <summary>Copy: every instance on TARGET; SOURCE was never changed.</summary>
    Copied = 14,
}

/// <summary>How TARGET gets SOURCE's data.</summary>
public enum SyncMode
{
    /// <summary>TARGET replicates SOURCE (<c>REPLICAOF</c>); needs <c>REPLICAOF</c>, <c>CONFIG</c> and, for the handoff, <c>CLIENT PAUSE</c>.</summary>
    Replication = 0,

    /// <summary>
    /// The coordinator copies every key and the instances track what they write meanwhile; for servers that refuse
    /// replication (managed services, Redis-compatible servers, a cluster TARGET). SOURCE is only read.
    /// </summary>
    Copy = 1,
}

/// <summary>Copy mode: which connections carry the copy's commands.</summary>
public enum CopyConnections
{
    /// <summary>
    /// The copy's own lean connections, one pair per page in flight, where both sides are one server named directly (TLS
    /// included); elsewhere (a cluster, a Sentinel, a tunnel, renamed commands) as <see cref="Shared"/>.
    /// </summary>
    Own = 0,

    /// <summary>Every copy command through the coordinator's StackExchange.Redis connections.</summary>
    Shared = 1,
}

/// <summary>How the cutover moves the instances.</summary>
public enum CutoverMode
{
    /// <summary><see cref="Handoff"/> when both servers support it (Redis 6.2 or later), otherwise <see cref="Window"/>.</summary>
    Auto = 0,

    /// <summary>Instances armed ahead of time; SOURCE's writes held for milliseconds while FAILOVER moves the primary role; no writable window; reversible.</summary>
    Handoff = 1,

    /// <summary>The manual procedure: TARGET a writable replica while operators flip each instance; then promotion.</summary>
    Window = 2,
}
