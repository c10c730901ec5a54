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
            lease = await Lease.AcquireAsync(copy ? Target : Source, Target, options.MigrationId, verb, time).ConfigureAwait(false);
            Source.Guard = Target.Guard = lease.ThrowIfLost;
        }

        leaseHolds++;
        return new LeaseHold(this);
    }

    /// <summary>Extends the lease over a write pause of at most <paramref name="bound"/>: a renewal cannot pass the pause.</summary>
    private Task HoldLeaseThroughAsync(TimeSpan bound) => lease?.HoldThroughAsync(bound) ?? Task.CompletedTask;

    private async Task ReleaseLeaseAsync()
    {
        if (lease is { } held)
        {
            lease = null;
            leaseHolds = 0;
            Source.Guard = Target.Guard = null;
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
