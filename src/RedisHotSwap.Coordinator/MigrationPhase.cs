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
}
