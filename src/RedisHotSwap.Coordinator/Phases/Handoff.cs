using System.Diagnostics;
using System.Globalization;
using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>
    /// After a handoff: hands the primary role back to SOURCE the same way (arm, fence, promote, push), so that
    /// SOURCE is the primary, TARGET its replica, and every live instance on SOURCE. <c>migrate</c> hands it over again.
    /// </summary>
    public async Task<MigrationStatus> RollbackAsync(CancellationToken cancellationToken = default)
    {
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
    /// Hands the primary role to <paramref name="to"/>: every instance arms (connects to it ahead of time), then
    /// <c>FAILOVER</c> holds the writes on the other side, lets <paramref name="to"/> take the last of its stream,
    /// promotes it and makes the other side its replica, all within <see cref="CoordinatorOptions.MaxPause"/>; then
    /// every instance is told to move (those with a write held move by themselves on the READONLY that follows).
    /// </summary>
    private async Task<MigrationStatus> HandOffAsync(MigrationState state, RedisSide to, CancellationToken cancellationToken)
    {
        var from = Other(to);
        var (primary, replica) = (Node(from), Node(to));

        var promotedAt = time.GetUtcNow();
        if (!await HandedOffAsync(primary, replica).ConfigureAwait(false))
        {
            state = await ArmAsync(state, from, to, cancellationToken).ConfigureAwait(false);
            (state, promotedAt) = await FailOverAsync(state, from, to, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Whether the primary role already sits with <paramref name="replica"/>'s server and the other side replicates it.</summary>
    private static async Task<bool> HandedOffAsync(RedisNode primary, RedisNode replica)
    {
        var next = await replica.InfoAsync().ConfigureAwait(false);
        var previous = await primary.InfoAsync().ConfigureAwait(false);
        return !next.IsReplica && previous.IsReplica && Replicates(previous, replica);
    }

    private async Task<MigrationState> ArmAsync(MigrationState state, RedisSide from, RedisSide to, CancellationToken cancellationToken)
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
        await primary.ConfigSetAuditedAsync("replica-read-only", "yes", "the side about to become a replica must refuse writes").ConfigureAwait(false);
        await replica.ConfigSetAuditedAsync("replica-read-only", "yes", "no application writes a replica before it is promoted").ConfigureAwait(false);

        // Once demoted, the old primary replicates the new one and authenticates with its credentials.
        if (replica.Options.Password is { Length: > 0 } password)
        {
            await primary.ConfigSetAuditedAsync("masterauth", password, $"so that {Upper(from)} can replicate {Upper(to)} after the handoff").ConfigureAwait(false);
        }

        if (replica.Options.User is { Length: > 0 } user)
        {
            await primary.ConfigSetAuditedAsync("masteruser", user, $"so that {Upper(from)} can replicate {Upper(to)} after the handoff").ConfigureAwait(false);
        }

        if (state.Phase != MigrationPhase.Arming || state.HandoffTo != to)
        {
            state = await store.WriteAsync(state.Enter(MigrationPhase.Arming, time.GetUtcNow()) with { Cutover = CutoverMode.Handoff, HandoffTo = to }, primary).ConfigureAwait(false);
        }

        await IssueDirectiveAsync(primary, from, $"arm for the handoff to {Upper(to)}", arm: to, alsoAnnounceOn: replica).ConfigureAwait(false);
        var armed = await WaitAsync(options.InstancesTimeout, () => ArmedAsync(from, to), cancellationToken).ConfigureAwait(false);
        if (!armed)
        {
            var (_, waiting) = await ArmedAsync(from, to).ConfigureAwait(false);
            throw await HaltAsync(state, primary, $"Not every instance armed within {options.InstancesTimeout}: {waiting}.",
                $"Nothing was promoted: {Upper(from)} stays the primary and every instance on it (armed ones hold a warm connection to {Upper(to)}).",
                "Check those instances (MigrationId, reachability of the other server), then run the same command again; or 'abort'.").ConfigureAwait(false);
        }

        return state;
    }

    /// <summary>
    /// The fence and the promotion: arms the fence on the primary, holds its writes, waits until the replica has
    /// processed its whole stream (the primary's offset does not move while writes are held), checks the offset did
    /// not move, promotes the replica, makes the old primary its replica, puts the fence's settings back and lets the
    /// held writes go on, which now fail with READONLY: the signal on which armed instances move and send them again.
    /// </summary>
    /// <remarks>
    /// Built from these steps rather than with <c>FAILOVER</c>: <c>FAILOVER</c> learns that the replica caught up from
    /// its periodic acknowledgement, and held writes 25 to 400 ms idle and up to a second under load on this machine,
    /// where these steps hold them a few milliseconds. The fence keeps the property <c>FAILOVER</c> has when the
    /// coordinator dies midway: the old primary never takes a write the new one does not see.
    /// </remarks>
    private async Task<(MigrationState State, DateTimeOffset PromotedAt)> FailOverAsync(MigrationState state, RedisSide from, RedisSide to, CancellationToken cancellationToken)
    {
        var (primary, replica) = (Node(from), Node(to));
        var fence = new Fence(primary);
        var promotedAt = time.GetUtcNow();
        var target = await replica.InfoAsync().ConfigureAwait(false);
        if (!(state.Phase == MigrationPhase.HandingOff && !target.IsReplica && target.PreviousReplicationId == state.PromotionReplicationId))
        {
            // Checked again right before the fence: an instance that left (or one that appeared unarmed) stops it.
            var (ready, waiting) = await ArmedAsync(from, to).ConfigureAwait(false);
            var lag = await LagAsync(primary, replica).ConfigureAwait(false);
            if (!ready || lag > options.MaxLagBytes)
            {
                throw await HaltAsync(state, primary,
                    !ready ? $"Not handing off: {waiting}." : $"Not handing off: {Upper(to)} trails {Upper(from)} by {lag:N0} bytes (more than --max-lag {options.MaxLagBytes:N0}).",
                    $"Nothing was promoted: {Upper(from)} stays the primary and every instance on it.",
                    "Run the same command again once every instance is armed and the lag is small ('status').").ConfigureAwait(false);
            }

            var settings = state.SourceMinReplicas is { } min && state.FencedMaxLag is { } maxLag && state.Phase == MigrationPhase.HandingOff
                ? new FenceSettings(min, maxLag)
                : await fence.ReadSettingsAsync().ConfigureAwait(false);
            state = await store.WriteAsync(state.Enter(MigrationPhase.HandingOff, time.GetUtcNow()) with
            {
                PromotionReplicationId = (await primary.InfoAsync().ConfigureAwait(false)).ReplicationId,
                SourceMinReplicas = settings.MinReplicas,
                FencedMaxLag = settings.MaxLag,
            }, primary).ConfigureAwait(false);

            var (promoted, problem, held) = await PromoteBehindFenceAsync(fence, settings, primary, replica, cancellationToken).ConfigureAwait(false);
            if (!promoted)
            {
                throw await HaltAsync(state, primary, problem!,
                    $"Nothing was promoted: {Upper(from)}'s writes resumed there (held {held.TotalMilliseconds:N1} ms), its settings are back as they were, and every instance stays on it.",
                    "Check the replication link and lag ('status'), then run the same command again (a larger --max-pause allows a longer hold).").ConfigureAwait(false);
            }

            promotedAt = time.GetUtcNow();
            state = state with { HandoffPauseMs = held.TotalMilliseconds };
        }

        // Resumed after the promotion, or the demotion above did not complete: finish it. The fence refuses writes on
        // the old primary meanwhile.
        var old = await primary.InfoAsync().ConfigureAwait(false);
        if (!(old.IsReplica && Replicates(old, replica)))
        {
            await primary.ExecuteAuditedAsync($"the old primary becomes {Upper(to)}'s replica", "REPLICAOF", replica.Host, replica.Port.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
            await fence.RestoreAsync(new FenceSettings(state.SourceMinReplicas ?? "0", state.FencedMaxLag ?? "10")).ConfigureAwait(false);
            await fence.UnpauseQuietlyAsync().ConfigureAwait(false);
        }

        return (state, promotedAt);
    }

    // Behind the pause, in as few round trips as the checks allow. Returns whether the replica was promoted and the
    // old primary demoted; when not, everything is put back before it returns.
    private async Task<(bool Promoted, string? Problem, TimeSpan Held)> PromoteBehindFenceAsync(
        Fence fence, FenceSettings settings, RedisNode primary, RedisNode replica, CancellationToken cancellationToken)
    {
        await fence.ArmAsync(settings).ConfigureAwait(false);
        var started = Stopwatch.GetTimestamp();
        try
        {
            await fence.PauseAsync(options.MaxPause).ConfigureAwait(false);
            var offset = (await primary.InfoAsync("replication").ConfigureAwait(false)).MasterOffset;
            while ((await replica.InfoAsync("replication").ConfigureAwait(false)).ReplicaOffset < offset)
            {
                // Everything behind the pause must fit in its bound, with room left to undo.
                if (Stopwatch.GetElapsedTime(started) > options.MaxPause * 0.8)
                {
                    return (false, $"{replica.Name} did not take the last of {primary.Name}'s stream within {options.MaxPause.TotalMilliseconds:N0} ms (--max-pause).", Stopwatch.GetElapsedTime(started));
                }

                cancellationToken.ThrowIfCancellationRequested();
            }

            if ((await primary.InfoAsync("replication").ConfigureAwait(false)).MasterOffset != offset)
            {
                return (false, $"{primary.Name}'s replication offset moved while its writes were held; something writes past the pause.", Stopwatch.GetElapsedTime(started));
            }

            await replica.ExecuteAuditedAsync("promote: it has processed the whole stream", "REPLICAOF", "NO", "ONE").ConfigureAwait(false);
            await primary.ExecuteAuditedAsync($"the old primary becomes {replica.Name}'s replica", "REPLICAOF", replica.Host, replica.Port.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
            return (true, null, Stopwatch.GetElapsedTime(started));
        }
        finally
        {
            await fence.UnpauseQuietlyAsync().ConfigureAwait(false);

            // Promoted, the old primary refuses writes by its role; otherwise the fence must not outlive the attempt.
            // Either way its settings go back, after the writes have gone on: nothing of this is on their path.
            await RestoreQuietlyAsync(fence, settings).ConfigureAwait(false);
        }
    }

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

    /// <summary>Whether every expected instance is on <paramref name="from"/>, armed for <paramref name="to"/> and done draining.</summary>
    private async Task<(bool Done, string Waiting)> ArmedAsync(RedisSide from, RedisSide to)
    {
        var live = await instances.LiveAsync().ConfigureAwait(false);
        if (live.Count < options.ExpectedInstances)
        {
            return (false, $"{live.Count} of at least {options.ExpectedInstances} instances have reported");
        }

        var waiting = live.Where(r => r.Side != from || r.Armed != to || r.Draining).ToArray();
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
