using System.Globalization;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    // The write pause outlasts the wait for TARGET by this much, so the fence cannot lapse before promotion.
    private static readonly TimeSpan PauseMargin = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Once every live instance reports TARGET (and has drained SOURCE): directs new instances to TARGET, pauses
    /// writes on SOURCE (the fence), checks the instances again, waits until TARGET has consumed SOURCE's whole
    /// stream, promotes TARGET, makes SOURCE refuse writes for good, lifts the pause, snapshots SOURCE, and waits
    /// until every live instance reports TARGET.
    /// </summary>
    public async Task<MigrationStatus> PromoteAsync(CancellationToken cancellationToken = default)
    {
        var state = await ReadStateAsync().ConfigureAwait(false);
        if (state.Phase is < MigrationPhase.Cutover or MigrationPhase.Aborted)
        {
            throw new PreflightRefusedException($"Migration '{options.MigrationId}' is {state.Phase}, not ready to promote; run 'cutover' first.");
        }

        var target = await Target.InfoAsync().ConfigureAwait(false);
        if (target.IsReplica)
        {
            state = await FenceAndPromoteAsync(state, cancellationToken).ConfigureAwait(false);
        }
        else if (!await PromotedByThisMigrationAsync(state, target).ConfigureAwait(false))
        {
            throw await HaltAsync(state, Source,
                "TARGET is a primary, but this migration did not promote it (it was detached or restarted); SOURCE may hold writes TARGET lacks.",
                "Nothing was promoted and no instance was directed anywhere.",
                "Run 'abort' to put every instance back on SOURCE, then start a new migration.").ConfigureAwait(false);
        }

        // TARGET is a primary from here on: the state, and the instruction to stay, live on it. Each step below is
        // idempotent, so a coordinator killed anywhere after the promotion finishes the job when run again.
        await Target.Connection.ConfigureAsync().ConfigureAwait(false);
        if (state.Phase != MigrationPhase.Promoted)
        {
            state = await EnterAsync(state, MigrationPhase.Promoted, Target).ConfigureAwait(false);
        }

        await Target.ConfigSetAsync("masterauth", string.Empty).ConfigureAwait(false); // SOURCE's secret has no business on TARGET now
        await Target.ConfigSetAsync("masteruser", string.Empty).ConfigureAwait(false);
        var directive = new Protocol.Directive(RedisSide.Target, "TARGET was promoted", time.GetUtcNow(), Promoted: true).ToJson();
        await PublishDirectiveAsync(Target, directive).ConfigureAwait(false);
        await FenceSourceForGoodAsync().ConfigureAwait(false);
        await Source.ExecuteAsync("CLIENT", "UNPAUSE").ConfigureAwait(false);

        // SOURCE refuses the SET now, but PUBLISH is no write: instances still listening there hear it at once.
        await Source.Connection.GetSubscriber().PublishAsync(Protocol.MigrationKeys.DirectiveChannel(options.MigrationId), directive).ConfigureAwait(false);
        var snapshot = await SnapshotSourceAsync(cancellationToken).ConfigureAwait(false);

        var settled = await WaitAsync(options.InstancesTimeout, () => InstancesOnAsync(RedisSide.Target), cancellationToken).ConfigureAwait(false);
        if (!settled)
        {
            var (_, waiting) = await InstancesOnAsync(RedisSide.Target).ConfigureAwait(false);
            throw await HaltAsync(state, Target, $"TARGET was promoted, but not every instance reports it within {options.InstancesTimeout}: {waiting}.",
                "TARGET is the primary; SOURCE refuses writes, so an instance still on it fails its writes rather than losing them.",
                "Check those instances (their MigrationId and reachability); run 'promote' again to keep waiting.").ConfigureAwait(false);
        }

        return await StatusAsync(snapshot).ConfigureAwait(false);
    }

    private async Task<MigrationState> FenceAndPromoteAsync(MigrationState state, CancellationToken cancellationToken)
    {
        var (ready, waiting) = await InstancesOnAsync(RedisSide.Target).ConfigureAwait(false);
        if (!ready)
        {
            throw await HaltAsync(state, Source, $"Not promoting: waiting for {waiting}.", "Nothing changed.", "Run 'cutover' to wait for them.").ConfigureAwait(false);
        }

        if (await WindowProblemAsync(state).ConfigureAwait(false) is { } problem)
        {
            throw await HaltAsync(state, Source, problem, "Nothing was promoted.", "Run 'abort', then start a new migration.").ConfigureAwait(false);
        }

        // Before the fence, while SOURCE still takes writes: an instance that starts (or restarts) from now on goes to TARGET.
        await PublishDirectiveAsync(Source, new Protocol.Directive(RedisSide.Target, "TARGET is being promoted", time.GetUtcNow()).ToJson()).ConfigureAwait(false);
        state = await EnterAsync(state, MigrationPhase.Promoting, Source).ConfigureAwait(false);

        var pause = (long)(options.PromotionTimeout + PauseMargin).TotalMilliseconds;
        await Source.ExecuteAsync("CLIENT", "PAUSE", pause.ToString(CultureInfo.InvariantCulture), "WRITE").ConfigureAwait(false);
        var promoted = false;
        try
        {
            // Behind the fence: an instance that moved back, or was still draining, shows up now or never.
            (ready, waiting) = await InstancesOnAsync(RedisSide.Target).ConfigureAwait(false);
            if (!ready)
            {
                throw await HaltAsync(state, Source, $"Not promoting: {waiting}.", "SOURCE's writes were unpaused; nothing was promoted.", "Run 'promote' again.").ConfigureAwait(false);
            }

            var sourceOffset = (await Source.InfoAsync().ConfigureAwait(false)).MasterOffset;
            string? problemDuringDrain = null;
            var drained = await WaitAsync(options.PromotionTimeout, async () =>
            {
                problemDuringDrain = await WindowProblemAsync(state).ConfigureAwait(false);
                var info = await Target.InfoAsync().ConfigureAwait(false);
                return (problemDuringDrain is not null || info.ReplicaOffset >= sourceOffset,
                    $"TARGET to consume SOURCE's stream ({Math.Max(0, sourceOffset - info.ReplicaOffset)} bytes left)");
            }, cancellationToken).ConfigureAwait(false);

            if (!drained || problemDuringDrain is not null)
            {
                throw await HaltAsync(state, Source,
                    problemDuringDrain ?? $"TARGET did not consume SOURCE's stream within {options.PromotionTimeout}.",
                    "SOURCE's writes were unpaused; TARGET is still a replica and nothing was promoted.",
                    "Run 'promote' again, or 'abort'.").ConfigureAwait(false);
            }

            await Target.ExecuteAsync("REPLICAOF", "NO", "ONE").ConfigureAwait(false);
            promoted = true;

            // Still behind the fence: from now on SOURCE refuses writes, so whatever the pause held fails visibly
            // (NOREPLICAS, which the SDK replays on TARGET) instead of succeeding on a primary nobody reads.
            await FenceSourceForGoodAsync().ConfigureAwait(false);
            return state;
        }
        finally
        {
            if (!promoted)
            {
                await UnpauseQuietlyAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>TARGET is a primary: did this migration make it one (rather than a restart or an operator)?</summary>
    private async Task<bool> PromotedByThisMigrationAsync(MigrationState state, ServerInfo target)
    {
        if (state.Phase == MigrationPhase.Promoted)
        {
            return true;
        }

        // REPLICAOF NO ONE keeps the former primary's replication id as master_replid2; a restart or a new dataset does not.
        var source = await Source.InfoAsync().ConfigureAwait(false);
        return state.Phase == MigrationPhase.Promoting && target.PreviousReplicationId == source.ReplicationId;
    }

    /// <summary>SOURCE, with no replica left, refuses every write from here on (set min-replicas-to-write 0 to use it again).</summary>
    private Task FenceSourceForGoodAsync() => Source.ConfigSetAsync("min-replicas-to-write", "1");

    private async Task UnpauseQuietlyAsync()
    {
        try
        {
            await Source.ExecuteAsync("CLIENT", "UNPAUSE").ConfigureAwait(false);
        }
        catch (StackExchange.Redis.RedisException)
        {
            // The pause ends by itself when its timeout passes.
        }
    }

    /// <summary>Snapshots SOURCE (BGSAVE) and says how it went, in words for the final status.</summary>
    private async Task<string> SnapshotSourceAsync(CancellationToken cancellationToken)
    {
        var before = (await Source.InfoAsync().ConfigureAwait(false)).LastSave;
        try
        {
            await Source.ExecuteAsync("BGSAVE").ConfigureAwait(false);
        }
        catch (StackExchange.Redis.RedisServerException ex) when (ex.Message.Contains("already in progress", StringComparison.OrdinalIgnoreCase))
        {
            // A save already under way serves as well.
        }
        catch (StackExchange.Redis.RedisServerException ex)
        {
            return $"done, but SOURCE's snapshot (BGSAVE) was refused: {ex.Message}; save it by hand";
        }

        ServerInfo? info = null;
        var saved = await WaitAsync(options.PromotionTimeout, async () =>
        {
            info = await Source.InfoAsync().ConfigureAwait(false);
            return (!info.SaveInProgress && info.LastSave > before, "SOURCE's snapshot (BGSAVE)");
        }, cancellationToken).ConfigureAwait(false);

        return !saved ? $"done; SOURCE's snapshot was still running after {options.PromotionTimeout}: check rdb_bgsave_in_progress on SOURCE"
            : info!.LastSaveSucceeded ? "done; SOURCE snapshotted"
            : "done, but SOURCE's snapshot failed (rdb_last_bgsave_status); save it by hand";
    }
}
