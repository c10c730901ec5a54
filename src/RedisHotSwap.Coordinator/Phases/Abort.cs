using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>
    /// Before promotion: counts the keys changed on TARGET during the window (what abort discards), refusing while
    /// there are any unless <see cref="CoordinatorOptions.DiscardTargetWrites"/>; directs every instance back to
    /// SOURCE, waits until they report it, counts again (no instance writes TARGET any more: the count is exact), then
    /// detaches TARGET.
    /// </summary>
    /// <returns>How many keys changed on TARGET during the window were discarded (created, updated or deleted there).</returns>
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

        if (!options.DiscardTargetWrites)
        {
            // Before anything changes: an instance sent back to SOURCE no longer sees what it wrote on TARGET.
            var live = (await instances.LiveAsync().ConfigureAwait(false)).Where(r => r.Side == RedisSide.Target || r.Draining).ToArray();
            var sofar = await CountTargetWritesAsync(live.Select(r => r.InstanceId).ToHashSet(StringComparer.Ordinal)).ConfigureAwait(false);
            var writing = live.Length;
            if (!sofar.Nothing || writing > 0)
            {
                throw new PreflightRefusedException(
                    $"Abort would discard {sofar.Describe()}{(writing > 0 ? $", and what the {writing} instances still on TARGET write there until they are back" : string.Empty)}. Nothing changed. Run 'promote' to keep them, or 'abort --discard-target-writes' to discard them.");
            }
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

        // Exact now: every instance that reports is back on SOURCE, its last writes on TARGET marked and shipped.
        var discarded = await CountTargetWritesAsync(stillWriting: []).ConfigureAwait(false);
        if (!discarded.Nothing && !options.DiscardTargetWrites)
        {
            throw await HaltAsync(state, Source, $"{Capitalized(discarded.Describe())} appeared on TARGET while the instances moved back.",
                "Every instance is on SOURCE; TARGET was not detached and keeps those keys.",
                "Run 'abort --discard-target-writes' to discard them.").ConfigureAwait(false);
        }

        // Recorded before TARGET is detached: a detached TARGET must never be taken for one this migration promoted.
        state = await EnterAsync(state, MigrationPhase.Aborted, Source).ConfigureAwait(false);
        if ((await Target.InfoAsync().ConfigureAwait(false)).IsReplica)
        {
            await Target.ExecuteAuditedAsync("abort: detach TARGET", "REPLICAOF", "NO", "ONE").ConfigureAwait(false);
        }

        await RestoreSettingsAsync(state, Target, Source).ConfigureAwait(false); // no secret of SOURCE stays on TARGET

        progress?.Report(await StatusAsync(discarded.Nothing
            ? "aborted; TARGET detached; no key was changed on TARGET during the window"
            : $"aborted; TARGET detached; discarded {discarded.Describe()} (TARGET keeps them; SOURCE does not have them)").ConfigureAwait(false));
        return discarded.Keys;
    }

    /// <summary>What an abort discards: keys changed on TARGET during the window, and writes whose keys are unknown.</summary>
    /// <param name="Created">Keys TARGET holds and SOURCE does not.</param>
    /// <param name="Changed">Keys SOURCE holds too, updated or deleted on TARGET.</param>
    /// <param name="Unknown">Writes an instance made on TARGET without naming their keys (a script, another database).</param>
    /// <param name="Unshipped">
    /// Instances that wrote on TARGET and left it (or died) without shipping every mark: keys of SOURCE they updated
    /// there may be missing from <paramref name="Changed"/>, so the count is a lower bound.
    /// </param>
    private readonly record struct TargetWrites(long Created, long Changed, long Unknown, IReadOnlyList<string> Unshipped)
    {
        public long Keys => Created + Changed;

        public long Total => Keys + Unknown;

        /// <summary>Nothing to discard, and that is certain.</summary>
        public bool Nothing => Total == 0 && Unshipped.Count == 0;

        public string Describe() =>
            $"{(Unshipped.Count > 0 ? "at least " : string.Empty)}{Keys} keys changed on TARGET during the window ({Created} created there, {Changed} that SOURCE also holds, updated or deleted)"
            + (Unknown > 0 ? $" and {Unknown} writes whose keys are unknown" : string.Empty)
            + (Unshipped.Count > 0
                ? $" (not an exact count: {Unshipped.Count} instances left TARGET without shipping every mark, killed or with TARGET stalled as they left, so keys they updated there may be missing from it: {string.Join(", ", Unshipped.Order(StringComparer.Ordinal).Take(5))}{(Unshipped.Count > 5 ? ", ..." : string.Empty)})"
                : string.Empty);
    }

    private static string Capitalized(string text) => char.ToUpperInvariant(text[0]) + text[1..];

    /// <summary>
    /// The keys the instances marked as written on TARGET while it was a writable replica (their marks, shipped to
    /// TARGET's dirty sets), with the keys only TARGET holds (a writer that marks nothing), each counted once; and the
    /// instances named on TARGET as possibly holding unshipped marks, except those in <paramref name="stillWriting"/>
    /// (live on TARGET: they ship as they leave).
    /// </summary>
    private async Task<TargetWrites> CountTargetWritesAsync(HashSet<string> stillWriting)
    {
        var unshipped = (await Target.Database.SetMembersAsync(MigrationKeys.WindowWriters(options.MigrationId)).ConfigureAwait(false))
            .Select(m => m.ToString())
            .Where(id => !stillWriting.Contains(id))
            .ToArray();

        var marked = new Dictionary<int, HashSet<RedisKey>>();
        var candidates = new Dictionary<int, HashSet<RedisKey>>();
        static HashSet<RedisKey> In(Dictionary<int, HashSet<RedisKey>> sets, int database) =>
            sets.TryGetValue(database, out var keys) ? keys : sets[database] = [];

        var marks = $"{MigrationKeys.Dirty(options.MigrationId, 0).ToString()[..^1]}*";
        await foreach (var set in Target.Server.KeysAsync(0, marks, pageSize: 512).ConfigureAwait(false))
        {
            var database = int.Parse(set.ToString()[(marks.Length - 1)..], System.Globalization.CultureInfo.InvariantCulture);
            await foreach (var member in Target.Database.SetScanAsync(set, pageSize: 512).ConfigureAwait(false))
            {
                RedisKey key = (byte[])member!;
                if (!MigrationKeys.IsProtocolKey(key)) // an instance's own reports pass the same connection
                {
                    In(marked, database).Add(key);
                    In(candidates, database).Add(key);
                }
            }
        }

        foreach (var database in (await Target.InfoAsync().ConfigureAwait(false)).Keys.Keys)
        {
            await foreach (var key in Target.Server.KeysAsync(database, pageSize: 512).ConfigureAwait(false))
            {
                if (!MigrationKeys.IsProtocolKey(key))
                {
                    In(candidates, database).Add(key);
                }
            }
        }

        long created = 0, total = 0;
        foreach (var (database, keys) in candidates)
        {
            var (sourceDb, targetDb) = (Source.Connection.GetDatabase(database), Target.Connection.GetDatabase(database));
            var written = In(marked, database);
            foreach (var chunk in keys.Chunk(512))
            {
                var onTarget = Task.WhenAll(chunk.Select(k => targetDb.KeyExistsAsync(k)));
                var onSource = Task.WhenAll(chunk.Select(k => sourceDb.KeyExistsAsync(k)));
                var (t, s) = (await onTarget.ConfigureAwait(false), await onSource.ConfigureAwait(false));
                for (var i = 0; i < chunk.Length; i++)
                {
                    // A marked key counts unless it was written and deleted again (nothing to discard); an unmarked one
                    // only when TARGET alone holds it.
                    var only = t[i] && !s[i];
                    created += only ? 1 : 0;
                    total += only || (written.Contains(chunk[i]) && s[i]) ? 1 : 0;
                }
            }
        }

        var unknown = (long?)await Target.Database.StringGetAsync(MigrationKeys.DirtyUnknown(options.MigrationId)).ConfigureAwait(false) ?? 0;
        return new TargetWrites(created, total - created, unknown, unshipped);
    }
}
