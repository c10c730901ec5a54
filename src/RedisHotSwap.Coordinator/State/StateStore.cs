using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.State;

/// <summary>Reads and writes <see cref="MigrationState"/> on whichever side is the primary of the migration's data.</summary>
internal sealed class StateStore(RedisNode source, RedisNode target, string migrationId)
{
    /// <summary>
    /// The lease this run holds, if any: where its key lives on the side written, a write is made only while the key
    /// still holds this run's value, in the same transaction.
    /// </summary>
    public Func<(string HeldOn, RedisKey Key, RedisValue Value)>? Fencing { get; set; }

    /// <summary>The newer of the two copies (SOURCE's replicates to TARGET; after promotion only TARGET's moves).</summary>
    public async Task<MigrationState> ReadAsync()
    {
        var key = MigrationKeys.State(migrationId);
        var onSource = MigrationState.FromHash(await source.ReadAsync(db => db.HashGetAllAsync(key), []).ConfigureAwait(false));
        var onTarget = MigrationState.FromHash(await target.ReadAsync(db => db.HashGetAllAsync(key), []).ConfigureAwait(false));
        return new[] { onSource, onTarget }.OfType<MigrationState>().MaxBy(s => s.Revision) ?? new MigrationState();
    }

    /// <summary>
    /// Writes to <paramref name="primary"/>, the side whose writes reach the other (or the only primary), only if the
    /// copy there still has the revision <paramref name="state"/> was read at: a lost race is an error, never an overwrite.
    /// </summary>
    /// <exception cref="MigrationHaltedException">Another coordinator wrote the state since it was read.</exception>
    public async Task<MigrationState> WriteAsync(MigrationState state, RedisNode primary)
    {
        primary.Guard?.Invoke();
        var next = state with { Revision = state.Revision + 1 };
        var key = MigrationKeys.State(migrationId);
        var fenced = Fencing?.Invoke() is { } lease && lease.HeldOn == primary.Name ? lease : ((string, RedisKey, RedisValue)?)null;

        // A transaction's conditions watch their keys, and the lease's renewal touches its key (a new time-to-live):
        // a write that met a renewal is tried again while the revision and the lease are still this run's.
        for (var attempt = 1; ; attempt++)
        {
            var transaction = primary.Database.CreateTransaction();
            transaction.AddCondition(state.Revision == 0 ? Condition.KeyNotExists(key) : Condition.HashEqual(key, "revision", state.Revision));
            if (fenced is { } held)
            {
                transaction.AddCondition(Condition.StringEqual(held.Item2, held.Item3));
            }

            _ = transaction.KeyDeleteAsync(key);
            _ = transaction.HashSetAsync(key, next.ToHash());
            if (await transaction.ExecuteAsync().ConfigureAwait(false))
            {
                return next;
            }

            var found = await primary.Database.HashGetAsync(key, "revision").ConfigureAwait(false);
            if (fenced is { } mine && await primary.Database.StringGetAsync(mine.Item2).ConfigureAwait(false) != mine.Item3)
            {
                throw new MigrationHaltedException(
                    $"This coordinator lost the lease on migration '{migrationId}' before it could write the state ({primary.Name} no longer holds its lease).",
                    "This run wrote nothing more; what it did before stands (see 'status').",
                    "Make sure no other coordinator runs this migration, then run the same command again.");
            }

            var unchanged = state.Revision == 0 ? found.IsNull : found == state.Revision;
            if (unchanged && attempt == 5)
            {
                throw new MigrationHaltedException(
                    $"The migration's state could not be written on {primary.Name}: five attempts met a change of its lease key (revision {state.Revision} and the lease are still this run's).",
                    "This run wrote nothing more; what it did before stands (see 'status').",
                    "Run the same command again.");
            }

            if (!unchanged)
            {
                throw new MigrationHaltedException(
                    $"The migration's state changed under this run: it was read at revision {state.Revision}, {primary.Name} now holds {(found.IsNull ? "none" : found)}; another coordinator wrote it.",
                    "This run wrote nothing more; what it did before stands (see 'status').",
                    "Make sure only one coordinator runs this migration, then run the same command again.");
            }
        }
    }

    /// <summary>
    /// Writes to <paramref name="target"/> in one <c>HSET</c>, without a transaction: for copy mode, whose TARGET may
    /// be a server the client cannot drive transactions on (Garnet). Every field is written each time, so nothing stale
    /// stays (a field is emptied, never removed).
    /// </summary>
    public async Task<MigrationState> WriteWholeAsync(MigrationState state, RedisNode target)
    {
        var next = state with { Revision = state.Revision + 1 };
        await target.Database.HashSetAsync(MigrationKeys.State(migrationId), next.ToHash()).ConfigureAwait(false);
        return next;
    }
}
