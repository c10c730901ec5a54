using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>
    /// Before promotion: directs every instance back to SOURCE, waits until they report it, counts the keys that
    /// switched instances wrote to TARGET and SOURCE lacks, then detaches TARGET.
    /// </summary>
    /// <returns>How many keys exist only on TARGET (written there during the window; SOURCE does not have them).</returns>
    public async Task<long> AbortAsync(CancellationToken cancellationToken = default)
    {
        await using var hold = (await HoldLeaseAsync("abort").ConfigureAwait(false)).ConfigureAwait(false);
        var state = await ReadStateAsync().ConfigureAwait(false);
        if (state.Sync == SyncMode.Copy)
        {
            return await AbortCopyAsync(state, cancellationToken).ConfigureAwait(false);
        }

        var target = await Target.InfoAsync().ConfigureAwait(false);
        if (!target.IsReplica && PromotedByThisMigration(state, target))
        {
            throw new PreflightRefusedException(state.Cutover == CutoverMode.Handoff
                ? $"Migration '{options.MigrationId}' already handed the primary role to TARGET; abort would discard what was written there since. Run 'rollback' to hand it back to SOURCE without loss."
                : $"Migration '{options.MigrationId}' already promoted TARGET; abort is no longer possible (SOURCE lacks what was written since). Run 'promote' to finish, or migrate back with a new migration from TARGET to SOURCE.");
        }

        await UndoFenceAsync(state).ConfigureAwait(false);

        // Written on SOURCE, the directive replicates to TARGET and reaches the instances there too...
        var directive = await IssueDirectiveAsync(Source, RedisSide.Source, "migration aborted", alsoAnnounceOn: Target).ConfigureAwait(false);
        if (!(target.IsReplica && ReplicatesSource(target)))
        {
            // ...unless TARGET no longer replicates: then tell the instances there directly, under the same number.
            await Target.Database.StringSetAsync(MigrationKeys.Directive(options.MigrationId), directive.ToJson()).ConfigureAwait(false);
        }

        var back = await WaitAsync(options.InstancesTimeout, () => InstancesOnAsync(RedisSide.Source), cancellationToken).ConfigureAwait(false);

        if (!back)
        {
            throw await HaltAsync(state, Source, $"Not every instance returned to SOURCE within {options.InstancesTimeout}.",
                "The directive to use SOURCE stands; TARGET was not detached.", "Check the remaining instances, then run 'abort' again.").ConfigureAwait(false);
        }

        var onlyOnTarget = await CountKeysOnlyOnTargetAsync().ConfigureAwait(false);

        // Recorded before TARGET is detached: a detached TARGET must never be taken for one this migration promoted.
        state = await EnterAsync(state, MigrationPhase.Aborted, Source).ConfigureAwait(false);
        if ((await Target.InfoAsync().ConfigureAwait(false)).IsReplica)
        {
            await Target.ExecuteAuditedAsync("abort: detach TARGET", "REPLICAOF", "NO", "ONE").ConfigureAwait(false);
        }

        await RestoreSettingsAsync(state, Target, Source).ConfigureAwait(false); // no secret of SOURCE stays on TARGET

        progress?.Report(await StatusAsync(onlyOnTarget == 0
            ? "aborted; TARGET detached"
            : $"aborted; TARGET detached. WARNING: {onlyOnTarget} keys written to TARGET during the window are not on SOURCE").ConfigureAwait(false));
        return onlyOnTarget;
    }

    private async Task<long> CountKeysOnlyOnTargetAsync()
    {
        long count = 0;
        foreach (var database in (await Target.InfoAsync().ConfigureAwait(false)).Keys.Keys)
        {
            var sourceDb = Source.Connection.GetDatabase(database);
            var batch = new List<RedisKey>(512);
            await foreach (var key in Target.Server.KeysAsync(database, pageSize: 512).ConfigureAwait(false))
            {
                if (MigrationKeys.IsProtocolKey(key))
                {
                    continue;
                }

                batch.Add(key);
                if (batch.Count == 512)
                {
                    count += await MissingAsync(sourceDb, batch).ConfigureAwait(false);
                    batch.Clear();
                }
            }

            count += await MissingAsync(sourceDb, batch).ConfigureAwait(false);
        }

        return count;
    }

    private static async Task<long> MissingAsync(IDatabase source, List<RedisKey> keys)
    {
        if (keys.Count == 0)
        {
            return 0;
        }

        var exists = await Task.WhenAll(keys.Select(k => source.KeyExistsAsync(k))).ConfigureAwait(false);
        return exists.Count(e => !e);
    }
}
