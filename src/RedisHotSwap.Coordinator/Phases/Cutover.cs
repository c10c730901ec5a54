using RedisHotSwap.Coordinator.State;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>
    /// Opens the writable window (<c>replica-read-only no</c>) and waits while operators move the instances, until
    /// every live instance reports TARGET. Stops loudly if TARGET's link drops or it full-resyncs meanwhile.
    /// </summary>
    public async Task CutoverAsync(CancellationToken cancellationToken = default)
    {
        await using var hold = (await HoldLeaseAsync("cutover").ConfigureAwait(false)).ConfigureAwait(false);
        var state = await ReadStateAsync().ConfigureAwait(false);
        if (state.Phase > MigrationPhase.Cutover)
        {
            return;
        }

        if (state.Phase < MigrationPhase.Replicating)
        {
            throw new PreflightRefusedException($"Migration '{options.MigrationId}' has not replicated yet; run 'replicate' first.");
        }

        if (state.Phase == MigrationPhase.Replicating)
        {
            // The baseline is recorded before TARGET accepts a single write, so that no resync can hide behind it,
            // and so that a coordinator killed right after finds the window open (and never re-issues REPLICAOF).
            var target = await Target.InfoAsync().ConfigureAwait(false);
            var source = await Source.InfoAsync().ConfigureAwait(false);
            if (!(target.IsReplica && ReplicatesSource(target) && target.LinkUp && !target.SyncInProgress))
            {
                throw await HaltAsync(state, Source, "TARGET is not an in-sync replica of SOURCE.", "TARGET was not opened for writes.",
                    "Run 'replicate' again.").ConfigureAwait(false);
            }

            // "In sync" opens the window, not "within MaxLagBytes": right after its initial sync TARGET may still lack
            // what SOURCE took since the snapshot (SOURCE sends it once TARGET has acknowledged the snapshot, and a busy
            // machine delays that). An instance flipped then would read older values than it wrote on SOURCE, and those
            // writes, arriving late, would land on top of the ones it makes on TARGET.
            var written = source.MasterOffset;
            if (!await WaitAsync(options.PromotionTimeout, async () =>
                {
                    var lag = Math.Max(0, written - (await Target.InfoAsync().ConfigureAwait(false)).ReplicaOffset);
                    return (lag == 0, $"TARGET to consume SOURCE's stream ({lag:N0} bytes left)");
                }, cancellationToken).ConfigureAwait(false))
            {
                throw await HaltAsync(state, Source, $"TARGET did not consume SOURCE's stream within {options.PromotionTimeout}.", "TARGET was not opened for writes.",
                    "Check TARGET's replication link (INFO replication), then run the same command again.").ConfigureAwait(false);
            }

            state = await store.WriteAsync(
                state.Enter(MigrationPhase.Cutover, time.GetUtcNow()) with { Cutover = CutoverMode.Window, WindowReplicationId = target.ReplicationId, WindowFullSyncs = source.FullSyncs },
                Source).ConfigureAwait(false);
        }

        state = await ChangeSettingAsync(state, Source, Target, "replica-read-only", "no", "open the writable window: switched instances write TARGET").ConfigureAwait(false);

        string? unsafeWindow = null;
        var moved = await WaitAsync(options.InstancesTimeout, async () =>
        {
            unsafeWindow = await WindowProblemAsync(state).ConfigureAwait(false);
            if (unsafeWindow is not null)
            {
                return (true, unsafeWindow);
            }

            return await InstancesOnAsync(RedisSide.Target).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);

        if (unsafeWindow is not null)
        {
            throw await HaltAsync(state, Source, unsafeWindow,
                "Nothing was promoted; instances stay where they are, and writes they made to TARGET may have been erased.",
                "Run 'abort' to put every instance back on SOURCE, then start a new migration.").ConfigureAwait(false);
        }

        if (!moved)
        {
            var (_, waiting) = await InstancesOnAsync(RedisSide.Target).ConfigureAwait(false);
            throw await HaltAsync(state, Source,
                $"Not every instance moved to TARGET within {options.InstancesTimeout}: {waiting}.",
                "TARGET stays a writable replica of SOURCE; switched instances keep writing TARGET, the others SOURCE.",
                "Flip the remaining instances, then run the same command again; or 'abort'.").ConfigureAwait(false);
        }
    }

    /// <summary>Why writes made to TARGET during the window may be lost, or null while they are safe.</summary>
    private async Task<string?> WindowProblemAsync(MigrationState state)
    {
        var target = await Target.InfoAsync().ConfigureAwait(false);
        var source = await Source.InfoAsync().ConfigureAwait(false);
        if (!target.IsReplica || !ReplicatesSource(target))
        {
            return "TARGET no longer replicates SOURCE during the writable window.";
        }

        if (!target.LinkUp)
        {
            return "TARGET's replication link to SOURCE went down during the writable window; a reconnection may full-resync and erase writes made to TARGET.";
        }

        if (source.FullSyncs > state.WindowFullSyncs || (state.WindowReplicationId is not null && target.ReplicationId != state.WindowReplicationId))
        {
            return "TARGET full-resynced from SOURCE during the writable window: writes made to TARGET since it opened were erased.";
        }

        return null;
    }
}
