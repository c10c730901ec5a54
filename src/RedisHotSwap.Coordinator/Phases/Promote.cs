using System.Globalization;
using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    // The write pause outlasts the wait for TARGET by this much, so the fence cannot lapse before promotion.
    private static readonly TimeSpan PauseMargin = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Once every live instance reports TARGET (and has drained SOURCE): directs new instances to TARGET, arms a
    /// fence that makes SOURCE refuse writes the moment TARGET leaves it, pauses SOURCE's writes, checks the
    /// instances again, waits until TARGET has consumed SOURCE's whole stream, promotes TARGET, verifies the fence,
    /// lifts the pause, snapshots SOURCE, and waits until every live instance reports TARGET.
    /// </summary>
    public async Task<MigrationStatus> PromoteAsync(CancellationToken cancellationToken = default)
    {
        await using var hold = (await HoldLeaseAsync("promote").ConfigureAwait(false)).ConfigureAwait(false);
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
        else if (!PromotedByThisMigration(state, target))
        {
            throw await HaltAsync(state, Source,
                "TARGET is a primary, but this migration did not promote it (it was detached or restarted); SOURCE may hold writes TARGET lacks.",
                "Nothing was promoted and no instance was directed anywhere.",
                "Run 'abort' to put every instance back on SOURCE, then start a new migration.").ConfigureAwait(false);
        }
        else if (!await new Fence(Source).SecureAsync().ConfigureAwait(false))
        {
            // Resumed after the promotion: the fence the first run set (and may not have persisted) is made sure of.
            throw new MigrationHaltedException("TARGET was promoted, but SOURCE still counts enough replicas to accept writes.",
                "TARGET is a primary; SOURCE may take writes from a client still on it.",
                "Check SOURCE's replicas (INFO replication), then run 'promote' again.");
        }

        // TARGET is a primary from here on: the state, and the instruction to stay, live on it. Each step below is
        // idempotent, so a coordinator killed anywhere after the promotion finishes the job when run again.
        await Target.ConfigSetAuditedAsync("min-replicas-to-write", "0", "a fence from an earlier migration must not bite on the new primary").ConfigureAwait(false);
        await Target.Connection.ConfigureAsync().ConfigureAwait(false);
        if (state.Phase != MigrationPhase.Promoted)
        {
            state = await EnterAsync(state, MigrationPhase.Promoted, Target).ConfigureAwait(false);
        }

        await RestoreSettingsAsync(state, Target, Source).ConfigureAwait(false); // SOURCE's secret has no business on TARGET now
        await UnpauseQuietlyAsync().ConfigureAwait(false);

        // SOURCE refuses the SET now, but PUBLISH is no write: instances still listening there hear it at once.
        await IssueDirectiveAsync(Target, RedisSide.Target, "TARGET was promoted", promoted: true, alsoAnnounceOn: Source).ConfigureAwait(false);
        var snapshot = await SnapshotAsync(Source, cancellationToken).ConfigureAwait(false);

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
        // A pause left by a killed run would hold every write below, the coordinator's own included.
        await UnpauseQuietlyAsync().ConfigureAwait(false);
        var (ready, waiting) = await InstancesOnAsync(RedisSide.Target).ConfigureAwait(false);
        if (!ready)
        {
            throw await HaltAsync(state, Source, $"Not promoting: waiting for {waiting}.", "Nothing changed.", "Run 'cutover' to wait for them.").ConfigureAwait(false);
        }

        if (await WindowProblemAsync(state).ConfigureAwait(false) is { } problem)
        {
            throw await HaltAsync(state, Source, problem, "Nothing was promoted.", "Run 'abort', then start a new migration.").ConfigureAwait(false);
        }

        await RefuseUnknownClientsAsync(state, Source).ConfigureAwait(false);

        // Armed before SOURCE counts TARGET as online (right after an initial sync, until TARGET's first
        // acknowledgement), the fence would bite at once: SOURCE would refuse every write, the lease's renewal included.
        var fence = new Fence(Source);
        if (!await WaitAsync(options.PromotionTimeout, async () => (await fence.ReplicasOnlineAsync().ConfigureAwait(false), "SOURCE to count TARGET as an online replica"), cancellationToken).ConfigureAwait(false))
        {
            throw await HaltAsync(state, Source, $"SOURCE did not count TARGET as an online replica within {options.PromotionTimeout}.", "Nothing changed.",
                "Check SOURCE's replicas (INFO replication), then run 'promote' again.").ConfigureAwait(false);
        }

        // Before the fence, while SOURCE still takes writes: an instance that starts (or restarts) from now on goes to
        // TARGET; and the state records what is needed to recognise this promotion and to undo the fence.
        await IssueDirectiveAsync(Source, RedisSide.Target, "TARGET is being promoted").ConfigureAwait(false);
        var source = await Source.InfoAsync().ConfigureAwait(false);
        var before = await fence.ReadSettingsAsync().ConfigureAwait(false);
        state = await store.WriteAsync(
            state.Enter(MigrationPhase.Promoting, time.GetUtcNow()) with
            {
                PromotionReplicationId = source.ReplicationId,
                SourceMinReplicas = state.SourceMinReplicas ?? before.MinReplicas,
                FencedMaxLag = state.FencedMaxLag ?? before.MaxLag,
            },
            Source).ConfigureAwait(false);

        // Armed while TARGET is still attached, the fence changes nothing yet: SOURCE keeps every replica it needs.
        // The moment TARGET leaves, SOURCE is one replica short and refuses every write (NOREPLICAS), so there is no
        // instant, even if this coordinator dies, in which SOURCE takes writes that TARGET will never see.
        var replicas = await fence.ArmAsync(new FenceSettings(state.SourceMinReplicas!, state.FencedMaxLag!)).ConfigureAwait(false);

        await HoldLeaseThroughAsync(LongestHold).ConfigureAwait(false); // through the catch-up, the fence check and the unpause
        (string Problem, string Left, string Next)? failure;
        var hold = options.PromotionTimeout + PauseMargin;
        fence.Start();
        try
        {
            // Inside: a pause whose answer was lost may hold SOURCE's writes all the same; it is lifted on the way out.
            // Every step up to the promotion is bounded by the pause: the undo, if any, comes well within the lease.
            await fence.WithinAsync(fence.PauseAsync(hold), hold, cancellationToken).ConfigureAwait(false);
            failure = await CatchUpAndPromoteAsync(state, fence, hold, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not PromotionUncertainException)
        {
            await UndoFenceAsync(state, RefusedUndos.ProblemOf(ex)).ConfigureAwait(false);
            throw;
        }

        if (failure is { } f)
        {
            // Lift the pause before recording anything: the record goes to SOURCE.
            await UndoFenceAsync(state, f.Problem).ConfigureAwait(false);
            throw await HaltAsync(state, Source, f.Problem, f.Left, f.Next).ConfigureAwait(false);
        }

        // Verify the fence before the pause ends: SOURCE must now count fewer good replicas than it requires.
        var fenced = await WaitAsync(options.PromotionTimeout, async () =>
            (await fence.BitesAsync(replicas).ConfigureAwait(false), "SOURCE to notice TARGET has left it (the fence)"), cancellationToken).ConfigureAwait(false);
        if (!fenced || !await fence.SecureAsync().ConfigureAwait(false))
        {
            throw new MigrationHaltedException("TARGET was promoted, but SOURCE still counts enough replicas to accept writes.",
                "SOURCE's writes stay paused until the pause times out; TARGET is a primary.",
                "Check SOURCE's replicas (INFO replication), then run 'promote' again.");
        }

        return state;
    }

    /// <summary>
    /// Behind the pause: re-check instances, wait for TARGET's offset, promote; each step bounded by what is left of
    /// <paramref name="hold"/> since the pause. Null when promoted.
    /// </summary>
    private async Task<(string Problem, string Left, string Next)?> CatchUpAndPromoteAsync(MigrationState state, Fence fence, TimeSpan hold, CancellationToken cancellationToken)
    {
        var (ready, waiting) = await fence.WithinAsync(InstancesOnAsync(RedisSide.Target), hold, cancellationToken).ConfigureAwait(false);
        if (!ready)
        {
            return ($"Not promoting: {waiting}.", "SOURCE's writes were unpaused; nothing was promoted.", "Run 'promote' again.");
        }

        var sourceOffset = (await fence.WithinAsync(Source.InfoAsync(), hold, cancellationToken).ConfigureAwait(false)).MasterOffset;
        string? problem = null;
        var drained = await WaitAsync(options.PromotionTimeout, async () =>
        {
            problem = await fence.WithinAsync(WindowProblemAsync(state), hold, cancellationToken).ConfigureAwait(false);
            var info = await fence.WithinAsync(Target.InfoAsync(), hold, cancellationToken).ConfigureAwait(false);
            return (problem is not null || info.ReplicaOffset >= sourceOffset,
                $"TARGET to consume SOURCE's stream ({Math.Max(0, sourceOffset - info.ReplicaOffset)} bytes left)");
        }, cancellationToken).ConfigureAwait(false);

        if (!drained || problem is not null)
        {
            return (problem ?? $"TARGET did not consume SOURCE's stream within {options.PromotionTimeout}.",
                "SOURCE's writes were unpaused; TARGET is still a replica and nothing was promoted.",
                "Run 'promote' again, or 'abort'.");
        }

        await fence.WithinAsync(LiftEarlierFenceAsync(Target), hold, cancellationToken).ConfigureAwait(false);
        try
        {
            await fence.WithinAsync(Target.ExecuteAuditedAsync("promote: TARGET has consumed SOURCE's whole stream", "REPLICAOF", "NO", "ONE"), hold, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            // The answer may be lost, not the command: only TARGET's own word that it is still a replica lets the
            // fence be undone; while it cannot be asked, SOURCE stays fenced.
            switch ((await SuccessorAsync(fence.WithinAsync(Target.InfoAsync("default"), hold, cancellationToken),
                () => fence.WithinAsync(Target.InfoAsync("default"), hold, cancellationToken)).ConfigureAwait(false)).IsPrimary)
            {
                case false:
                    throw;
                case null:
                    throw new PromotionUncertainException($"TARGET may have been promoted (its answer to REPLICAOF NO ONE was lost: {ex.Message}) and cannot be asked now.",
                        "SOURCE stays fenced: it refuses writes once TARGET has left it; its writes stay paused until the pause times out.",
                        "Check TARGET (INFO replication), then run 'promote' again.");
            }
        }

        return null;
    }

    /// <summary>
    /// Before a promotion that did not happen: lift the pause and put SOURCE's fence settings back; neither once the
    /// lease may be another coordinator's (that one's fence may stand there now): then it throws the halt saying so.
    /// </summary>
    private async Task UndoFenceAsync(MigrationState state, string? problem = null)
    {
        var fence = new Fence(Source);
        var refused = new RefusedUndos();
        await refused.TryAsync(fence.UnpauseQuietlyAsync).ConfigureAwait(false);
        if (state.SourceMinReplicas is { } minReplicas) // else the fence was never armed
        {
            await refused.TryAsync(async () =>
            {
                try
                {
                    await fence.RestoreAsync(new FenceSettings(minReplicas, state.FencedMaxLag ?? "10")).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
                {
                    // Harmless while TARGET is attached; 'abort' puts it back too.
                }
            }).ConfigureAwait(false);
        }

        if (refused.Any)
        {
            throw refused.Halt(problem); // with the problem that called the promotion off
        }
    }

    /// <summary>
    /// Lifts a fence an earlier migration left on <paramref name="successor"/> (a finished migration, or a window
    /// promotion, leaves the old side refusing writes through <c>min-replicas-to-write</c>), while it is still a
    /// replica, where the setting has no effect. Lifted after the promotion instead, it would refuse every write
    /// (<c>NOREPLICAS</c>) from the moment the successor is a primary until then: the instances already on it would
    /// see those errors.
    /// </summary>
    private static async Task LiftEarlierFenceAsync(RedisNode successor)
    {
        if (await successor.ConfigGetAsync("min-replicas-to-write").ConfigureAwait(false) is { } left && left != "0")
        {
            await successor.ConfigSetAuditedAsync("min-replicas-to-write", "0", "a fence left by an earlier migration must not bite once it is the primary").ConfigureAwait(false);
        }
    }

    /// <summary>TARGET is a primary: did this migration make it one (rather than a restart, an operator or an abort)?</summary>
    private static bool PromotedByThisMigration(MigrationState state, ServerInfo target) =>
        state.Phase == MigrationPhase.Promoted
        || (state.Phase is MigrationPhase.Promoting or MigrationPhase.HandingOff && state.PromotionReplicationId is { } id && target.PreviousReplicationId == id);

    private Task UnpauseQuietlyAsync() => new Fence(Source).UnpauseQuietlyAsync();

    /// <summary>Snapshots <paramref name="node"/> (BGSAVE) and says how it went, in words for the final status.</summary>
    private async Task<string> SnapshotAsync(RedisNode node, CancellationToken cancellationToken)
    {
        try
        {
            await node.ExecuteAuditedAsync("keep a snapshot of the side traffic left", "BGSAVE").ConfigureAwait(false);
        }
        catch (StackExchange.Redis.RedisServerException ex) when (ex.Message.Contains("already in progress", StringComparison.OrdinalIgnoreCase))
        {
            // A save already under way serves as well.
        }
        catch (StackExchange.Redis.RedisServerException ex)
        {
            return $"done, but {node.Name}'s snapshot (BGSAVE) was refused: {ex.Message}; save it by hand";
        }

        ServerInfo? info = null;
        var saved = await WaitAsync(options.PromotionTimeout, async () =>
        {
            info = await node.InfoAsync().ConfigureAwait(false);
            return (!info.SaveInProgress, $"{node.Name}'s snapshot (BGSAVE)"); // it started when BGSAVE answered; now it has ended
        }, cancellationToken).ConfigureAwait(false);

        return !saved ? $"done; {node.Name}'s snapshot was still running after {options.PromotionTimeout}: check rdb_bgsave_in_progress on {node.Name}"
            : info!.LastSaveSucceeded ? $"done; {node.Name} snapshotted"
            : $"done, but {node.Name}'s snapshot failed (rdb_last_bgsave_status); save it by hand";
    }
}
