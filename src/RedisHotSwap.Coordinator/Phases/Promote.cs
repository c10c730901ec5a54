using System.Globalization;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>
    /// Once every live instance reports TARGET: pauses writes on SOURCE (the fence), waits until TARGET has
    /// consumed SOURCE's whole stream, promotes TARGET, directs every instance to stay on it, lifts the pause and
    /// snapshots SOURCE.
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
            var stragglers = (await instances.LiveAsync().ConfigureAwait(false)).Where(r => r.Side != RedisSide.Target).ToArray();
            if (stragglers.Length > 0)
            {
                throw await HaltAsync(state, Source, $"Not promoting: {stragglers.Length} instances still report SOURCE: {Names(stragglers)}.",
                    "Nothing changed.", "Run 'cutover' to wait for them.").ConfigureAwait(false);
            }

            if (await WindowProblemAsync(state).ConfigureAwait(false) is { } problem)
            {
                throw await HaltAsync(state, Source, problem, "Nothing was promoted.", "Run 'abort', then start a new migration.").ConfigureAwait(false);
            }

            state = await EnterAsync(state, MigrationPhase.Promoting, Source).ConfigureAwait(false);
            var pause = (long)options.PromotionTimeout.TotalMilliseconds;
            await Source.ExecuteAsync("CLIENT", "PAUSE", pause.ToString(CultureInfo.InvariantCulture), "WRITE").ConfigureAwait(false);
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
                await Source.ExecuteAsync("CLIENT", "UNPAUSE").ConfigureAwait(false);
                throw await HaltAsync(state, Source,
                    problemDuringDrain ?? $"TARGET did not consume SOURCE's stream within {options.PromotionTimeout}.",
                    "SOURCE's writes were unpaused; TARGET is still a replica and nothing was promoted.",
                    "Run 'promote' again, or 'abort'.").ConfigureAwait(false);
            }

            await Target.ExecuteAsync("REPLICAOF", "NO", "ONE").ConfigureAwait(false);
        }

        // TARGET is a primary from here on: the state, and the instruction to stay, live on it.
        await Target.Connection.ConfigureAsync().ConfigureAwait(false);
        if (state.Phase != MigrationPhase.Promoted)
        {
            state = await EnterAsync(state, MigrationPhase.Promoted, Target).ConfigureAwait(false);
        }

        await PublishDirectiveAsync(Target, RedisSide.Target, "TARGET was promoted").ConfigureAwait(false);
        await Source.ExecuteAsync("CLIENT", "UNPAUSE").ConfigureAwait(false);
        await SnapshotSourceAsync(cancellationToken).ConfigureAwait(false);
        return await StatusAsync("done").ConfigureAwait(false);
    }

    private async Task SnapshotSourceAsync(CancellationToken cancellationToken)
    {
        var before = (await Source.InfoAsync().ConfigureAwait(false)).LastSave;
        try
        {
            await Source.ExecuteAsync("BGSAVE").ConfigureAwait(false);
        }
        catch (StackExchange.Redis.RedisServerException)
        {
            // A save already in progress serves as well.
        }

        await WaitAsync(options.PromotionTimeout, async () =>
        {
            var info = await Source.InfoAsync().ConfigureAwait(false);
            return (!info.SaveInProgress && info.LastSave >= before, "SOURCE's snapshot (BGSAVE)");
        }, cancellationToken).ConfigureAwait(false);
    }
}
