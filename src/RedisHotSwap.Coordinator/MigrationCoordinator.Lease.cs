using RedisHotSwap.Coordinator.Safety;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    private Lease? lease;
    private int leaseHolds;

    /// <summary>
    /// Holds the migration's lease while a verb that changes anything runs (a verb run by another, as <c>migrate</c>
    /// runs <c>replicate</c>, shares it); released when the outermost verb ends. Read-only verbs need none.
    /// </summary>
    /// <exception cref="PreflightRefusedException">Another coordinator runs this migration.</exception>
    private async Task<IAsyncDisposable> HoldLeaseAsync(string verb)
    {
        if (lease is null)
        {
            // Copy mode writes nothing to SOURCE: its lease, like its state, lives on TARGET.
            var copy = UsesCopy(await ReadStateAsync().ConfigureAwait(false));
            lease = await Lease.AcquireAsync(copy ? Target : Source, Target, options.MigrationId, verb, time, LongestHold + Lease.TimeToLive, LiftStaleSealAsync,
                async line => progress?.Report(await StatusAsync(line).ConfigureAwait(false))).ConfigureAwait(false);
            Source.Guard = Target.Guard = lease.ThrowIfLost;
            Source.UndoGuard = Target.UndoGuard = lease.ThrowIfNotOursToUndo; // never lift a fence another coordinator may have put
            var held = lease;
            store.Fencing = () => held.Fencing;
        }

        leaseHolds++;
        return new LeaseHold(this);
    }

    /// <summary>Extends the lease over a write pause of at most <paramref name="bound"/>: a renewal cannot pass the pause.</summary>
    private Task HoldLeaseThroughAsync(TimeSpan bound) => lease?.HoldThroughAsync(bound) ?? Task.CompletedTask;

    /// <summary>The longest the lease is held over a write pause: a window promotion's catch-up and fence check, each up to the promotion timeout, then the unpause.</summary>
    private TimeSpan LongestHold => TimeSpan.FromTicks(Math.Max((2 * options.PromotionTimeout + PauseMargin).Ticks, options.MaxPause.Ticks));

    /// <summary>
    /// Before the lease is taken, when no side takes a write: a handoff stopped behind its fence (killed, say) left the
    /// old primary sealed. Only while its successor is still its replica (nothing was promoted, so it is the only
    /// primary) and the settings the seal changed are recorded, the pause and the seal are lifted. False otherwise.
    /// </summary>
    private async Task<bool> LiftStaleSealAsync()
    {
        var state = await store.ReadAsync().ConfigureAwait(false);
        if (state is not { Phase: MigrationPhase.HandingOff, HandoffTo: { } to } || RecordedFenceSettings(state) is not { } recorded)
        {
            return false;
        }

        var (sealedSide, successor) = (Node(Other(to)), Node(to));
        var info = await successor.InfoAsync("replication").ConfigureAwait(false);
        if (!(info.IsReplica && Replicates(info, sealedSide)))
        {
            return false;
        }

        var fence = new Fence(sealedSide);
        await fence.UnpauseQuietlyAsync().ConfigureAwait(false);
        await fence.RestoreAsync(recorded).ConfigureAwait(false);
        return true;
    }

    private async Task ReleaseLeaseAsync()
    {
        if (lease is { } held)
        {
            lease = null;
            leaseHolds = 0;
            Source.Guard = Target.Guard = null;
            Source.UndoGuard = Target.UndoGuard = null;
            store.Fencing = null;
            await held.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed class LeaseHold(MigrationCoordinator coordinator) : IAsyncDisposable
    {
        private bool released;

        public ValueTask DisposeAsync()
        {
            if (released || --coordinator.leaseHolds > 0)
            {
                released = true;
                return ValueTask.CompletedTask;
            }

            released = true;
            return new ValueTask(coordinator.ReleaseLeaseAsync());
        }
    }
}
