using System.Diagnostics;
using System.Globalization;
using System.Runtime.ExceptionServices;
using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    // How long a lag over --max-lag is waited out right before the fence.
    private static readonly TimeSpan LagWait = TimeSpan.FromSeconds(30);

    /// <summary>
    /// After a handoff: hands the primary role back to SOURCE the same way (arm, fence, promote, push), so that
    /// SOURCE is the primary, TARGET its replica, and every live instance on SOURCE. <c>migrate</c> hands it over again.
    /// </summary>
    public async Task<MigrationStatus> RollbackAsync(CancellationToken cancellationToken = default)
    {
        await using var hold = (await HoldLeaseAsync("rollback").ConfigureAwait(false)).ConfigureAwait(false);
        var state = await ReadStateAsync().ConfigureAwait(false);
        var handingBack = state is { Cutover: CutoverMode.Handoff, HandoffTo: RedisSide.Source } && state.Phase is MigrationPhase.Arming or MigrationPhase.HandingOff;
        if (state.Cutover != CutoverMode.Handoff || !(state.Phase == MigrationPhase.Promoted || handingBack || state.Phase == MigrationPhase.RolledBack))
        {
            throw new PreflightRefusedException(
                $"Migration '{options.MigrationId}' is {state.Phase}{(state.Cutover is { } mode ? $" ({mode.ToString().ToLowerInvariant()} cutover)" : string.Empty)}: rollback hands back what a handoff handed over; run it after 'migrate --cutover handoff' has promoted TARGET ('abort' calls off a migration that has not).");
        }

        return await HandOffAsync(state, RedisSide.Source, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Hands the primary role to <paramref name="to"/>: every instance arms (connects to it ahead of time), then the
    /// other side's writes are held while <paramref name="to"/> takes the last of its stream and is promoted, and the
    /// other side becomes its replica, within <see cref="CoordinatorOptions.MaxPause"/>; then every instance is told
    /// to move (those with a write held move by themselves on the READONLY that follows).
    /// </summary>
    private async Task<MigrationStatus> HandOffAsync(MigrationState state, RedisSide to, CancellationToken cancellationToken)
    {
        // What runs behind the pause, compiled now: a fresh redis-hotswap process runs it for the first time.
        CodePath.Prepare(typeof(MigrationCoordinator), typeof(Fence), typeof(RedisNode), typeof(ServerInfo), typeof(Lease), typeof(StateStore));
        var from = Other(to);
        var (primary, replica) = (Node(from), Node(to));

        var promotedAt = time.GetUtcNow();
        var next = await replica.InfoAsync().ConfigureAwait(false);
        var promotedByUs = state.Phase == MigrationPhase.HandingOff && state.HandoffTo == to && !next.IsReplica
            && state.PromotionReplicationId is { } replid && next.PreviousReplicationId == replid
            && (state.SuccessorRunId is null || next.RunId == state.SuccessorRunId); // a restarted server may hold less
        var handedOff = await HandedOffAsync(primary, replica).ConfigureAwait(false);
        if (promotedByUs && !handedOff)
        {
            // Resumed between the promotion and the demotion: the old primary is sealed meanwhile. Finish the demotion.
            await DemoteAsync(primary, replica).ConfigureAwait(false);
        }
        else if (!handedOff)
        {
            if (state.Phase == MigrationPhase.HandingOff && next.IsReplica && Replicates(next, primary))
            {
                // A run stopped behind the fence (killed, say) may have left the old primary paused and sealed. Its
                // successor is still its replica, so nothing was promoted: lift both before anything is written there.
                var fence = new Fence(primary);
                await fence.UnpauseQuietlyAsync().ConfigureAwait(false);
                if (RecordedFenceSettings(state) is { } recorded)
                {
                    await fence.RestoreAsync(recorded).ConfigureAwait(false);
                }
            }

            long armEpoch;
            (state, armEpoch) = await ArmAsync(state, from, to, cancellationToken).ConfigureAwait(false);
            (state, promotedAt) = await FailOverAsync(state, from, to, armEpoch, cancellationToken).ConfigureAwait(false);
        }

        // The seal's settings go back on the demoted side whatever run made the demotion (a replica refuses writes by its role).
        if (RecordedFenceSettings(state) is { } settings)
        {
            await new Fence(primary).RestoreAsync(settings).ConfigureAwait(false);
        }

        // The coordinator's own connections learned the roles when they connected: they must ask again, or the
        // client refuses to write to the new primary.
        await replica.Connection.ConfigureAsync().ConfigureAwait(false);
        await primary.Connection.ConfigureAsync().ConfigureAwait(false);

        // The new primary holds the state and the directive from here on. Each step is idempotent: a coordinator
        // killed anywhere below finishes the job when run again.
        var done = to == RedisSide.Target ? MigrationPhase.Promoted : MigrationPhase.RolledBack;
        if (state.Phase != done)
        {
            await IssueDirectiveAsync(replica, to, $"{Upper(to)} is the primary", promoted: true, alsoAnnounceOn: primary).ConfigureAwait(false);
            state = await store.WriteAsync(state.Enter(done, promotedAt) with { HandoffTo = to, HandoffPromotedAt = promotedAt.ToUnixTimeMilliseconds() }, replica).ConfigureAwait(false);
        }

        await PersistRolesAsync(primary, replica).ConfigureAwait(false);
        var settled = await WaitAsync(options.InstancesTimeout, () => InstancesOnAsync(to, requireExpected: true), cancellationToken).ConfigureAwait(false);
        if (!settled)
        {
            var (_, waiting) = await InstancesOnAsync(to, requireExpected: true).ConfigureAwait(false);
            throw await HaltAsync(state, replica, $"{Upper(to)} is the primary, but not every instance reports it within {options.InstancesTimeout}: {waiting}.",
                $"{Upper(from)} is {Upper(to)}'s replica and refuses writes, so an instance still on it fails its writes rather than losing them.",
                "Check those instances (their MigrationId and reachability); run the same command again to keep waiting.").ConfigureAwait(false);
        }

        // The switch times the instances reported (their clocks), against the moment this coordinator saw the promotion.
        var promotion = DateTimeOffset.FromUnixTimeMilliseconds(state.HandoffPromotedAt ?? promotedAt.ToUnixTimeMilliseconds());
        var lastSwitch = (await instances.LiveAsync().ConfigureAwait(false))
            .Where(r => r.SwitchedAt >= promotion - options.MaxPause)
            .Select(r => (r.SwitchedAt!.Value - promotion).TotalMilliseconds)
            .DefaultIfEmpty(0)
            .Max();
        state = await store.WriteAsync(state with { HandoffLastSwitchMs = Math.Max(0, lastSwitch) }, replica).ConfigureAwait(false);
        return await StatusAsync(HandoffSummary(state)).ConfigureAwait(false);
    }

    /// <summary>The fenced side's settings as the first run behind the fence recorded them; null before it.</summary>
    private static FenceSettings? RecordedFenceSettings(MigrationState state) =>
        state is { SourceMinReplicas: { } min, FencedMaxLag: { } maxLag } ? new FenceSettings(min, maxLag) : null;

    /// <summary>Whether the primary role already sits with <paramref name="replica"/>'s server and the other side replicates it.</summary>
    private static async Task<bool> HandedOffAsync(RedisNode primary, RedisNode replica)
    {
        var next = await replica.InfoAsync().ConfigureAwait(false);
        var previous = await primary.InfoAsync().ConfigureAwait(false);
        return !next.IsReplica && previous.IsReplica && Replicates(previous, replica);
    }

    // Returns the arm directive's epoch: an instance counts as armed only under it (a report made before it, say armed
    // for an earlier run since called off, does not).
    private async Task<(MigrationState State, long ArmEpoch)> ArmAsync(MigrationState state, RedisSide from, RedisSide to, CancellationToken cancellationToken)
    {
        var (primary, replica) = (Node(from), Node(to));
        var replicaInfo = await replica.InfoAsync().ConfigureAwait(false);
        if (!(replicaInfo.IsReplica && Replicates(replicaInfo, primary) && replicaInfo.LinkUp && !replicaInfo.SyncInProgress))
        {
            throw await HaltAsync(state, primary, $"{Upper(to)} is not an in-sync replica of {Upper(from)}; a handoff needs one.",
                "Nothing was changed.", to == RedisSide.Target ? "Run 'replicate' (or 'migrate', which starts with it)." : "Check TARGET's replication link ('status'), then run 'rollback' again.").ConfigureAwait(false);
        }

        // The replica must refuse writes until it is the primary: an instance flipped early could otherwise write
        // there and lose it to a resync; and the side that becomes the replica must too, or it would take writes
        // that never reach the new primary.
        state = await ChangeSettingAsync(state, primary, primary, "replica-read-only", "yes", "the side about to become a replica must refuse writes").ConfigureAwait(false);
        state = await ChangeSettingAsync(state, primary, replica, "replica-read-only", "yes", "no application writes a replica before it is promoted").ConfigureAwait(false);

        await LiftEarlierFenceAsync(replica).ConfigureAwait(false);

        // Once demoted, the old primary replicates the new one and authenticates with its credentials.
        if (replica.Options.Password is { Length: > 0 } password)
        {
            state = await ChangeSettingAsync(state, primary, primary, "masterauth", password, $"so that {Upper(from)} can replicate {Upper(to)} after the handoff").ConfigureAwait(false);
        }

        if (replica.Options.User is { Length: > 0 } user)
        {
            state = await ChangeSettingAsync(state, primary, primary, "masteruser", user, $"so that {Upper(from)} can replicate {Upper(to)} after the handoff").ConfigureAwait(false);
        }

        if (state.Phase != MigrationPhase.Arming || state.HandoffTo != to)
        {
            state = await store.WriteAsync(state.Enter(MigrationPhase.Arming, time.GetUtcNow()) with { Cutover = CutoverMode.Handoff, HandoffTo = to }, primary).ConfigureAwait(false);
        }

        var epoch = (await IssueDirectiveAsync(primary, from, $"arm for the handoff to {Upper(to)}", arm: to, alsoAnnounceOn: replica).ConfigureAwait(false)).Epoch;
        var armed = await WaitAsync(options.InstancesTimeout, () => ArmedAsync(from, to, epoch), cancellationToken).ConfigureAwait(false);
        if (!armed)
        {
            var (_, waiting) = await ArmedAsync(from, to, epoch).ConfigureAwait(false);
            throw await HaltAsync(state, primary, $"Not every instance armed within {options.InstancesTimeout}: {waiting}.",
                $"Nothing was promoted: {Upper(from)} stays the primary and every instance on it (armed ones hold a warm connection to {Upper(to)}).",
                "Check those instances (MigrationId, reachability of the other server), then run the same command again; or 'abort'.").ConfigureAwait(false);
        }

        return (state, epoch);
    }

    /// <summary>
    /// The fence and the promotion: holds the primary's writes, waits until the replica has processed its whole
    /// stream, seals the primary (it refuses every write from then on, pause or no pause), waits again for whatever
    /// reached the stream before the seal, promotes the replica and makes the old primary its replica; then lets the
    /// held writes go on, which now fail with READONLY: the signal on which armed instances move and send them again.
    /// </summary>
    /// <remarks>
    /// Built from these steps rather than with <c>FAILOVER</c>: <c>FAILOVER</c> learns that the replica caught up from
    /// its periodic acknowledgement, and held writes 25 to 400 ms idle and up to a second under load on this machine,
    /// where these steps hold them a few milliseconds. Safety does not rest on the pause's timer: the seal is what
    /// keeps the old primary from taking a write the new one does not have, even if the pause lapses or the
    /// coordinator dies midway; the pause only turns the writes that arrive meanwhile into held ones.
    /// </remarks>
    private async Task<(MigrationState State, DateTimeOffset PromotedAt)> FailOverAsync(MigrationState state, RedisSide from, RedisSide to, long armEpoch, CancellationToken cancellationToken)
    {
        var (primary, replica) = (Node(from), Node(to));
        var fence = new Fence(primary);

        // Checked again right before the fence: an instance that left (or one that appeared unarmed) stops it; a
        // lag over --max-lag (a burst of writes) is waited out, so that what the pause holds is a few milliseconds.
        string? problem = null;
        var ready = await WaitAsync(LagWait, async () =>
        {
            var (armed, waiting) = await ArmedAsync(from, to, armEpoch).ConfigureAwait(false);
            var lag = await LagAsync(primary, replica).ConfigureAwait(false);
            problem = !armed ? waiting : lag > options.MaxLagBytes ? $"{Upper(to)} trails {Upper(from)} by {lag:N0} bytes (more than --max-lag {options.MaxLagBytes:N0})" : null;
            return (problem is null || !armed, problem ?? "nothing: every instance armed and the lag small");
        }, cancellationToken).ConfigureAwait(false);
        if (!ready || problem is not null)
        {
            throw await HaltAsync(state, primary, $"Not handing off: {problem}.",
                $"Nothing was promoted: {Upper(from)} stays the primary and every instance on it.",
                "Run the same command again once every instance is armed and the lag is small ('status').").ConfigureAwait(false);
        }

        await RefuseUnknownClientsAsync(state, primary).ConfigureAwait(false);

        // The settings the seal changes, recorded before it changes them; a run resumed after a failure keeps the first record.
        var settings = state.Phase == MigrationPhase.HandingOff && RecordedFenceSettings(state) is { } recorded
            ? recorded
            : await fence.ReadSettingsAsync().ConfigureAwait(false);
        state = await store.WriteAsync(state.Enter(MigrationPhase.HandingOff, time.GetUtcNow()) with
        {
            PromotionReplicationId = (await primary.InfoAsync().ConfigureAwait(false)).ReplicationId,
            SuccessorRunId = (await replica.InfoAsync("server").ConfigureAwait(false)).RunId,
            SourceMinReplicas = settings.MinReplicas,
            FencedMaxLag = settings.MaxLag,
        }, primary).ConfigureAwait(false);

        var outcome = await PromoteBehindFenceAsync(fence, settings, primary, replica, state.SuccessorRunId!, cancellationToken).ConfigureAwait(false);
        if (outcome == Promotion.NotPromoted)
        {
            await CallOffAsync(primary, replica, from, to).ConfigureAwait(false);
            throw await HaltAsync(state, primary, fence.Problem!,
                $"Nothing was promoted: {Upper(from)}'s settings are back as they were, its writes resumed there (held {fence.Held.TotalMilliseconds:N1} ms), and every instance stays on it (disarmed: the next run arms them again).",
                "Check the replication link and lag ('status'), then run the same command again (a larger --max-pause allows a longer hold).").ConfigureAwait(false);
        }

        var promotedAt = fence.PromotedAt ?? time.GetUtcNow();
        state = state with { HandoffPauseMs = fence.Held.TotalMilliseconds };
        if (outcome == Promotion.PromotedNotDemoted)
        {
            throw await HaltAsync(state, replica, $"{Upper(to)} was promoted, but {Upper(from)} could not be made its replica: {fence.Problem}",
                $"{Upper(from)} is sealed: it refuses every write (NOREPLICAS), and armed instances move to {Upper(to)} on that answer.",
                "Run the same command again: it makes the old primary a replica and finishes the handoff.").ConfigureAwait(false);
        }

        return (state, promotedAt);
    }

    // Writes that met the seal wait, on each armed instance, for the promotion or for the handoff to be called off:
    // disarmed, the instances send them again where they are (the seal is lifted by now). Without this they would wait
    // out DrainTimeout. Nothing depends on it for safety: an instance that misses it still waits only that long.
    private async Task CallOffAsync(RedisNode primary, RedisNode replica, RedisSide from, RedisSide to)
    {
        try
        {
            await IssueDirectiveAsync(primary, from, $"the handoff to {Upper(to)} was called off", alsoAnnounceOn: replica).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException or MigrationHaltedException)
        {
            // The halt says what was left (a lost lease: another coordinator's turn); the instances' bound holds.
        }
    }

    private enum Promotion
    {
        NotPromoted,
        PromotedNotDemoted,
        Done,
    }

    // Behind the pause, in as few round trips as the checks allow, each step bounded by what is left of --max-pause:
    // the lease is held that long and no longer, and a server slow to answer ends the fenced part in time to undo it.
    // Whatever happens, the pause is lifted before it returns: after the settings are put back when nothing was
    // promoted, and with the seal kept when the old primary is still a primary beside the promoted one. Unless the
    // lease may be another coordinator's by then (this one stalled behind its fence): its fence may stand there now, so
    // nothing is undone and the halt says what stays, with what went wrong first.
    private async Task<Promotion> PromoteBehindFenceAsync(Fence fence, FenceSettings settings, RedisNode primary, RedisNode replica, string successor, CancellationToken cancellationToken)
    {
        var run = new FencedRun();
        await HoldLeaseThroughAsync(options.MaxPause).ConfigureAwait(false);
        await fence.PrepareSealAsync(settings).ConfigureAwait(false); // nothing behind the pause that can be done before it
        fence.Start();
        ExceptionDispatchInfo? thrown = null;
        try
        {
            await StepsBehindFenceAsync(run, fence, primary, replica, successor, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            fence.Fail(ex.Message);
        }
        catch (Exception ex)
        {
            thrown = ExceptionDispatchInfo.Capture(ex); // thrown again once the undo is done
        }

        var refused = new RefusedUndos();
        if (run.Outcome == Promotion.NotPromoted && run.SealedOff)
        {
            await refused.TryAsync(() => RestoreQuietlyAsync(fence, settings)).ConfigureAwait(false); // before the held writes go on
        }

        await refused.TryAsync(() => run.Unpaused ?? fence.UnpauseQuietlyAsync()).ConfigureAwait(false); // the one sent behind the demotion, or now
        fence.Stop();
        if (run.Outcome == Promotion.Done)
        {
            // A replica refuses writes by its role: the seal is no longer needed.
            await refused.TryAsync(() => RestoreQuietlyAsync(fence, settings)).ConfigureAwait(false);
        }

        if (refused.Any)
        {
            // After a promotion, the next run finishes it ('abort' refuses once TARGET was promoted).
            var first = fence.Problem ?? RefusedUndos.ProblemOf(thrown?.SourceException);
            throw run.Outcome == Promotion.NotPromoted
                ? refused.Halt(first)
                : refused.Halt(first,
                    $"{replica.Name} was promoted{(run.Outcome == Promotion.Done ? $" and {primary.Name} made its replica" : $", {primary.Name} sealed (it refuses every write)")}.",
                    $"Run 'status' to see who holds the lease; once no other coordinator runs this migration, run the same command again: it finishes the handoff ({replica.Name} was promoted, so 'abort' refuses).");
        }

        thrown?.Throw();
        return run.Outcome;
    }

    // The steps behind the pause; what they got to is in run.
    private async Task StepsBehindFenceAsync(FencedRun run, Fence fence, RedisNode primary, RedisNode replica, string successor, CancellationToken cancellationToken)
    {
        var bound = options.MaxPause;
        var offset = await fence.WithinAsync(fence.PauseAsync(bound), bound, cancellationToken).ConfigureAwait(false);
        if (!await fence.CaughtUpAsync(replica, offset, bound / 2, cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        // Whatever entered the stream before the seal (a write past a lapsed pause, a replication PING) must reach
        // the replica too; nothing enters it after. Sealed only now: until the replica has shown it keeps up, a
        // held write waits behind the pause (and goes on on its own if the pause lapses), not refused.
        run.SealedOff = true;
        if (await fence.WithinAsync(fence.SealAsync(), bound, cancellationToken).ConfigureAwait(false) is not { } sealedAt
            || (sealedAt != offset && !await fence.CaughtUpAsync(replica, sealedAt, bound / 2, cancellationToken).ConfigureAwait(false)))
        {
            return;
        }

        // Pipelined behind the promotion: the role and the run id, in one answer, of the server that answered
        // (not one restarted since).
        var promote = replica.ExecuteAuditedAsync("promote: it has processed the whole stream", "REPLICAOF", "NO", "ONE");
        var answered = replica.InfoAsync("default");
        Exception? lost = null;
        try
        {
            await fence.WithinAsync(promote, bound, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            lost = ex;
        }

        // The answer may be lost, not the command (the replica may be a primary now); and a server restarted
        // since the catch-up may answer as a primary with less data. Only the same server, a primary now, is
        // promoted; only its own word that it is still a replica, or another server's, lets the seal go.
        var (isPrimary, runId) = await SuccessorAsync(fence.WithinAsync(answered, bound, cancellationToken),
            () => fence.WithinAsync(replica.InfoAsync("default"), bound, cancellationToken)).ConfigureAwait(false);
        if (runId is not null && runId != successor)
        {
            fence.Fail($"{replica.Name} restarted during the handoff (another run id): it may hold less than {primary.Name}, which stays the primary.");
            return;
        }

        if (lost is not null && isPrimary == false)
        {
            fence.Fail(lost.Message);
            return;
        }

        if (isPrimary != true || runId is null)
        {
            fence.Fail(lost is TimeoutException ? $"{replica.Name} did not answer REPLICAOF NO ONE within --max-pause ({bound.TotalMilliseconds:N0} ms)" : lost?.Message ?? $"{replica.Name} could not be asked whether it is the primary now.");
            fence.PromotedAt = time.GetUtcNow();
            run.Outcome = Promotion.PromotedNotDemoted; // the seal stays: the old primary takes no write the new one may lack
            return;
        }

        fence.PromotedAt = time.GetUtcNow();
        run.Outcome = Promotion.PromotedNotDemoted;

        // One round trip: the demotion, then the held writes go on (and fail READONLY: the armed instances' signal).
        var demoted = fence.WithinAsync(DemoteAsync(primary, replica), bound, cancellationToken);
        run.Unpaused = fence.UnpauseQuietlyAsync();
        await demoted.ConfigureAwait(false);
        run.Outcome = Promotion.Done;
    }

    // How far the steps behind the fence got, for the undo after them.
    private sealed class FencedRun
    {
        public Promotion Outcome { get; set; } = Promotion.NotPromoted;

        public bool SealedOff { get; set; }

        public Task? Unpaused { get; set; } // sent behind the demotion
    }

    // The undos after a fence that were not made because another coordinator may hold the lease by then, and the halt
    // that says so: what went wrong first, then every undo not made (what stays as it is).
    private sealed class RefusedUndos
    {
        private readonly List<UndoRefusedException> refused = [];

        public bool Any => refused.Count > 0;

        public static string? ProblemOf(Exception? ex) => (ex as MigrationHaltedException)?.Problem ?? ex?.Message;

        public async Task TryAsync(Func<Task> undo)
        {
            try
            {
                await undo().ConfigureAwait(false);
            }
            catch (UndoRefusedException ex)
            {
                refused.Add(ex);
            }
        }

        public MigrationHaltedException Halt(string? first, string promoted = "Nothing was promoted.", string? howToContinue = null)
        {
            var lostLease = refused[0].Problem;
            return new MigrationHaltedException(
                first is null || first == lostLease ? lostLease : $"{first} Then: {lostLease}",
                $"{promoted} It left {string.Join("; ", refused.Select(r => r.Left))}, and undid nothing more: another coordinator may hold the lease now, and what this run left is that one's to undo.",
                howToContinue ?? refused[0].HowToContinue);
        }
    }

    // What the successor answers of its role (true for a primary) and its run id, each null when it cannot be asked:
    // both from one answer (the one pipelined behind the promotion, or asked again when that was lost), so that they
    // never come from two processes.
    private static async Task<(bool? IsPrimary, string? RunId)> SuccessorAsync(Task<ServerInfo> answered, Func<Task<ServerInfo>> askAgain)
    {
        var info = await AnsweredAsync(answered).ConfigureAwait(false) ?? await AnsweredAsync(askAgain()).ConfigureAwait(false);
        return (info is null ? null : !info.IsReplica, info?.RunId);

        static async Task<ServerInfo?> AnsweredAsync(Task<ServerInfo> info)
        {
            try
            {
                return await info.ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
            {
                return null;
            }
        }
    }

    private static async Task DemoteAsync(RedisNode primary, RedisNode replica) =>
        await primary.ExecuteAuditedAsync($"the old primary becomes {replica.Name}'s replica", "REPLICAOF", replica.Host, replica.Port.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);

    private static async Task RestoreQuietlyAsync(Fence fence, FenceSettings settings)
    {
        try
        {
            await fence.RestoreAsync(settings).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            // The state keeps the settings; the next run (or 'abort') puts them back.
        }
    }

    /// <summary>
    /// Whether every expected instance is on <paramref name="from"/>, armed for <paramref name="to"/> under the arm
    /// directive of epoch <paramref name="epoch"/> (or a later one) and done draining.
    /// </summary>
    private async Task<(bool Done, string Waiting)> ArmedAsync(RedisSide from, RedisSide to, long epoch)
    {
        var live = await instances.LiveAsync().ConfigureAwait(false);
        if (live.Count < options.ExpectedInstances)
        {
            return (false, $"{live.Count} of at least {options.ExpectedInstances} instances have reported");
        }

        var waiting = live.Where(r => r.Problem is not null || r.Side != from || r.Armed != to || r.ArmedUnder < epoch || r.Draining).ToArray();
        return waiting.Length == 0
            ? (true, $"nothing: all {live.Count} instances are armed")
            : (false, $"{waiting.Length} of {live.Count} instances not armed for {Upper(to)} yet: {Names(waiting)}");
    }

    private static async Task<long> LagAsync(RedisNode primary, RedisNode replica)
    {
        var offset = (await primary.InfoAsync().ConfigureAwait(false)).MasterOffset;
        return Math.Max(0, offset - (await replica.InfoAsync().ConfigureAwait(false)).ReplicaOffset);
    }

    /// <summary>A restart keeps the roles the handoff gave: written to the configuration files where there are any.</summary>
    private static async Task PersistRolesAsync(RedisNode demoted, RedisNode promoted)
    {
        await demoted.RewriteConfigAsync("keep the demoted side a replica across a restart").ConfigureAwait(false);
        await promoted.RewriteConfigAsync("keep the promoted side a primary across a restart").ConfigureAwait(false);
    }

    private static string HandoffSummary(MigrationState state) =>
        $"done: {state.HandoffTo?.ToString().ToUpperInvariant()} is the primary; writes were held {state.HandoffPauseMs ?? 0:N1} ms; the last instance switched {state.HandoffLastSwitchMs ?? 0:N1} ms after the promotion";

    private RedisNode Node(RedisSide side) => side == RedisSide.Source ? Source : Target;

    private static RedisSide Other(RedisSide side) => side == RedisSide.Source ? RedisSide.Target : RedisSide.Source;

    private static string Upper(RedisSide side) => side.ToString().ToUpperInvariant();

    private static bool Replicates(ServerInfo replica, RedisNode primary) =>
        replica.MasterPort == primary.Port && SameHost(replica.MasterHost, primary.Host);

    private static bool SameHost(string a, string b) =>
        string.Equals(a, b, StringComparison.OrdinalIgnoreCase) || (IsLoopback(a) && IsLoopback(b));
}
