using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Coordinator.State;

/// <summary>Reads and writes <see cref="MigrationState"/> on whichever side is the primary of the migration's data.</summary>
internal sealed class StateStore(RedisNode source, RedisNode target, string migrationId)
{
    /// <summary>The newer of the two copies (SOURCE's replicates to TARGET; after promotion only TARGET's moves).</summary>
    public async Task<MigrationState> ReadAsync()
    {
        var key = MigrationKeys.State(migrationId);
        var onSource = MigrationState.FromHash(await source.ReadAsync(db => db.HashGetAllAsync(key), []).ConfigureAwait(false));
        var onTarget = MigrationState.FromHash(await target.ReadAsync(db => db.HashGetAllAsync(key), []).ConfigureAwait(false));
        return new[] { onSource, onTarget }.OfType<MigrationState>().MaxBy(s => s.Revision) ?? new MigrationState();
    }

    /// <summary>Writes to <paramref name="primary"/>, the side whose writes reach the other (or the only primary).</summary>
    public async Task<MigrationState> WriteAsync(MigrationState state, RedisNode primary)
    {
        var next = state with { Revision = state.Revision + 1 };
        var key = MigrationKeys.State(migrationId);
        var transaction = primary.Database.CreateTransaction();
        _ = transaction.KeyDeleteAsync(key);
        _ = transaction.HashSetAsync(key, next.ToHash());
        await transaction.ExecuteAsync().ConfigureAwait(false);
        return next;
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
