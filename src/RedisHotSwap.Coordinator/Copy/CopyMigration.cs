using System.Diagnostics;
using System.Globalization;
using RedisHotSwap.Coordinator.Copy;
using RedisHotSwap.Coordinator.State;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator;

/// <summary>
/// Copy mode (<c>--sync copy</c>): for servers that refuse replication. SOURCE is only read; the state, the
/// directives and the instances' write marks live on TARGET, and directives are announced on both channels.
/// </summary>
/// <remarks>
/// <list type="number">
/// <item>Track: every instance tracks its writes (the keys, once acknowledged, go to TARGET's dirty sets).</item>
/// <item>Backfill: every key of every database is copied (SCAN, then DUMP/RESTORE or type-level commands); the SCAN
/// cursor of each database is kept in the state, so a killed coordinator continues where it was.</item>
/// <item>Converge: the keys written meanwhile are copied again, round after round, until few are left; then every key
/// (or a sample) is compared, and the ones that differ are compared again under the fence.</item>
/// <item>Fence: instances hold their writes; the last marked keys are copied and compared; nothing may differ.</item>
/// <item>Switch: every instance moves to TARGET, where its held writes run.</item>
/// </list>
/// </remarks>
public sealed partial class MigrationCoordinator
{
    private const int ScanCount = 1000;
    private const int BatchesInFlight = 8;

    // Keys compared at once: both sides' whole values are read, so fewer than are copied at once.
    private const int VerifyBatch = 100;
    private const long ConvergedKeys = 200;
    private const int MaxRounds = 20;
    private const int FenceAttempts = 3;
    private const long TimeToLiveToleranceMs = 1000;
    private static readonly TimeSpan FencePoll = TimeSpan.FromMilliseconds(2);

    private bool UsesCopy(MigrationState state) =>
        state.Sync == SyncMode.Copy || (state.Sync is null && state.Phase == MigrationPhase.New && options.Sync == SyncMode.Copy);

    /// <summary>Copy mode's preflight: changes nothing.</summary>
    private async Task CheckCopyAsync(MigrationState state)
    {
        var problems = new List<string>();
        if (state.Sync is SyncMode.Replication || (state.Sync is null && state.Phase != MigrationPhase.New))
        {
            problems.Add($"Migration '{options.MigrationId}' runs with --sync replication; run it again without --sync copy, or 'abort' it and start a copy under a new --migration id.");
        }

        if (state.Phase is MigrationPhase.Copied or MigrationPhase.Aborted)
        {
            problems.Add($"Migration '{options.MigrationId}' is already {state.Phase.ToString().ToLowerInvariant()}; use a new --migration id to start another.");
        }

        var source = await Source.InfoAsync("server").ConfigureAwait(false);
        if (source.RunId.Length > 0 && (await Target.PrimariesInfoAsync("server").ConfigureAwait(false)).Any(p => p.Info.RunId == source.RunId))
        {
            problems.Add($"SOURCE and TARGET are the same server (run_id {source.RunId}); point --target at the server you are moving to.");
        }

        problems.AddRange(await ClusterProblemsAsync().ConfigureAwait(false));

        if (state.Phase == MigrationPhase.New && !options.AllowTargetData && await TargetApplicationKeysAsync().ConfigureAwait(false) is > 0 and var keys)
        {
            problems.Add($"TARGET holds {keys} keys; the copy would overwrite the ones SOURCE also has: empty it (FLUSHALL) or pass --allow-target-data.");
        }

        if (problems.Count > 0)
        {
            throw new PreflightRefusedException(problems);
        }
    }

    // TARGET's keys that are not the protocol's (the copy keeps its state there), on every primary of a cluster.
    private async Task<long> TargetApplicationKeysAsync()
    {
        long count = 0;
        foreach (var (primary, info) in await Target.PrimariesInfoAsync("keyspace").ConfigureAwait(false))
        {
            foreach (var (database, keys) in info.Keys)
            {
                if (database != 0)
                {
                    count += keys;
                    continue;
                }

                await foreach (var key in primary.KeysAsync(0, pageSize: ScanCount).ConfigureAwait(false))
                {
                    if (!MigrationKeys.IsProtocolKey(key))
                    {
                        count++;
                    }
                }
            }
        }

        return count;
    }

    /// <summary>
    /// A cluster can be TARGET, never SOURCE (the copy scans one server); and it has only database 0, so SOURCE must use
    /// no other. The backfill and every converging round check again (a key written to another one meanwhile halts).
    /// </summary>
    private async Task<List<string>> ClusterProblemsAsync()
    {
        var problems = new List<string>();
        if (Source.IsCluster)
        {
            problems.Add("SOURCE is a Redis Cluster; copy mode moves from a single server (into a cluster or not): give one server as --source.");
        }

        if (Target.IsCluster && (await Source.InfoAsync("keyspace").ConfigureAwait(false)).Keys.Where(d => d.Key != 0 && d.Value > 0).ToArray() is { Length: > 0 } others)
        {
            problems.Add($"SOURCE holds keys in database {string.Join(", ", others.Select(d => $"{d.Key} ({d.Value} keys)"))}, and a Redis Cluster (TARGET) has only database 0: move those keys into database 0 on SOURCE (and the applications with them), or choose a TARGET that is not a cluster.");
        }

        return problems;
    }

    private async Task<MigrationStatus> MigrateByCopyAsync(MigrationState state, CancellationToken cancellationToken)
    {
        if (state.Phase == MigrationPhase.Copied)
        {
            return await StatusAsync("copied: every instance is on TARGET").ConfigureAwait(false);
        }

        if (state.Phase == MigrationPhase.New)
        {
            await CheckCopyAsync(state).ConfigureAwait(false);
            state = await store.WriteWholeAsync(state with { Sync = SyncMode.Copy }, Target).ConfigureAwait(false);
        }

        using var copier = new KeyCopier(Source.Connection, Target.Connection, options.CopyConnections == CopyConnections.Own ? CopyLanes.For(Source, Target) : null) { BigKeyBytes = options.BigKeyBytes };
        if (state.Phase == MigrationPhase.Switching)
        {
            return await SwitchToTargetAsync(state, fencedAt: null, cancellationToken).ConfigureAwait(false);
        }

        if (state.Phase == MigrationPhase.Fencing)
        {
            // A coordinator killed under the fence: the instances still hold their writes. Let them go on SOURCE first.
            await IssueCopyDirectiveAsync(CopyStage.Copying, "copy: the fence is lifted (resumed)").ConfigureAwait(false);
            state = await EnterCopyAsync(state, MigrationPhase.Converging).ConfigureAwait(false);
        }

        // Early, so that a writer that is not an instance stops the run before the backfill, not after it.
        await RefuseUnknownWritersAsync(state, "before the copy").ConfigureAwait(false);
        await WatchKeyspaceAsync().ConfigureAwait(false);
        if (state.Phase == MigrationPhase.New)
        {
            await IssueCopyDirectiveAsync(CopyStage.Track, "copy: track writes").ConfigureAwait(false);
            await WaitForTrackingAsync(state, cancellationToken).ConfigureAwait(false);
            await (keyspace?.ForgetAsync() ?? Task.CompletedTask).ConfigureAwait(false);
            await IssueCopyDirectiveAsync(CopyStage.Copying, "copy: backfill").ConfigureAwait(false);
            state = await EnterCopyAsync(state, MigrationPhase.Backfilling).ConfigureAwait(false);
        }
        else
        {
            // Resumed: whoever started since must track before anything is copied again.
            await WaitForTrackingAsync(state, cancellationToken).ConfigureAwait(false);
            await (keyspace?.ForgetAsync() ?? Task.CompletedTask).ConfigureAwait(false);
        }

        if (state.Phase == MigrationPhase.Backfilling)
        {
            state = await BackfillAsync(state, copier, cancellationToken).ConfigureAwait(false);
            state = await EnterCopyAsync(state, MigrationPhase.Converging).ConfigureAwait(false);
        }

        for (var attempt = 1; ; attempt++)
        {
            state = await ConvergeAsync(state, copier, cancellationToken).ConfigureAwait(false);
            var suspects = await VerifyAsync(cancellationToken).ConfigureAwait(false);

            // What was written while verification ran is copied, and what differed is compared again: the fence then
            // has only the last few keys to copy and compare.
            state = await ConvergeAsync(state, copier, cancellationToken).ConfigureAwait(false);
            suspects = await StillDifferingAsync(suspects).ConfigureAwait(false);
            state = await ConvergeAsync(state, copier, cancellationToken).ConfigureAwait(false);
            await RefuseUnknownWritersAsync(state, "before the fence").ConfigureAwait(false);
            await CopyUnexplainedAsync(copier, fenced: false).ConfigureAwait(false);
            var (fenced, fencedAt, outcome) = await FenceAsync(state, copier, suspects, cancellationToken).ConfigureAwait(false);
            state = fenced;
            if (outcome is null)
            {
                return await SwitchToTargetAsync(state, fencedAt, cancellationToken).ConfigureAwait(false);
            }

            if (attempt == FenceAttempts)
            {
                throw await HaltCopyAsync(state, $"The copy could not be fenced in {FenceAttempts} attempts: {outcome}.",
                    "Writes go on on SOURCE; every instance still tracks them.", "Run 'migrate --sync copy' again, or 'abort'.").ConfigureAwait(false);
            }

            progress?.Report(await StatusAsync($"fence lifted, trying again: {outcome}").ConfigureAwait(false));
        }
    }

    private Task<MigrationState> EnterCopyAsync(MigrationState state, MigrationPhase phase) =>
        store.WriteWholeAsync(state.Enter(phase, time.GetUtcNow()), Target);

    /// <summary>Records why the copy stopped (on TARGET), then throws: the next run (and <c>status</c>) shows it.</summary>
    private async Task<Exception> HaltCopyAsync(MigrationState state, string problem, string stateLeft, string howToContinue)
    {
        try
        {
            await store.WriteWholeAsync(state with { Halted = problem }, Target).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The halt itself is what matters; the record is a courtesy.
        }

        return new MigrationHaltedException(problem, stateLeft, howToContinue);
    }

    private async Task<Directive> IssueCopyDirectiveAsync(CopyStage? stage, string reason, RedisSide side = RedisSide.Source, bool promoted = false, Task<long>? epochTaken = null) =>
        await IssueDirectiveAsync(Target, side, reason, promoted, arm: stage is null ? null : RedisSide.Target, alsoAnnounceOn: Source, copy: stage, epochTaken: epochTaken).ConfigureAwait(false);

    // The standing directive is announced on SOURCE's channel again at every poll: an instance started since (which has
    // no connection to TARGET) reads it from TARGET then.
    private async Task AnnounceAsync()
    {
        var json = (string?)await Target.Database.StringGetAsync(MigrationKeys.Directive(options.MigrationId)).ConfigureAwait(false);
        if (json is not null)
        {
            await Source.Connection.GetSubscriber().PublishAsync(MigrationKeys.DirectiveChannel(options.MigrationId), json).ConfigureAwait(false);
        }
    }

    private async Task WaitForTrackingAsync(MigrationState state, CancellationToken cancellationToken)
    {
        var tracking = await WaitAsync(options.InstancesTimeout, async () =>
        {
            await AnnounceAsync().ConfigureAwait(false);
            var live = await instances.LiveAsync().ConfigureAwait(false);
            var untracked = live.Where(r => r.Problem is not null || r.Tracking is null || r.Side != RedisSide.Source).ToArray();
            if (live.Count < options.ExpectedInstances)
            {
                return (false, $"{live.Count} of at least {options.ExpectedInstances} instances have reported");
            }

            return untracked.Length == 0
                ? (true, $"all {live.Count} instances track their writes")
                : (false, $"{untracked.Length} of {live.Count} instances do not track their writes yet: {Names(untracked)}");
        }, cancellationToken).ConfigureAwait(false);
        if (!tracking)
        {
            throw await HaltCopyAsync(state, $"Not every instance tracked its writes within {options.InstancesTimeout}.",
                "Nothing was copied since; SOURCE is unchanged.", "Check the instances named (they need this version of RedisHotSwap and MigrationId set), then run 'migrate --sync copy' again, or 'abort'.").ConfigureAwait(false);
        }
    }

    /// <summary>Copies every key of every database of SOURCE, from the cursor each database reached.</summary>
    private async Task<MigrationState> BackfillAsync(MigrationState state, KeyCopier copier, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var lastSaved = clock.Elapsed;
        var databases = await SourceDatabasesAsync(state).ConfigureAwait(false);
        foreach (var database in databases)
        {
            var cursor = state.CopyCursors.GetValueOrDefault(database, "0");
            if (cursor == "done")
            {
                continue;
            }

            if (cursor != "0")
            {
                progress?.Report(await StatusAsync($"backfill: database {database} resumed from cursor {cursor}").ConfigureAwait(false));
            }

            var db = Source.Connection.GetDatabase(database);
            var inFlight = new Queue<(string Next, Task Copy)>();
            do
            {
                cancellationToken.ThrowIfCancellationRequested();
                var reply = (RedisResult[])(await db.ExecuteAsync("SCAN", cursor, "COUNT", ScanCount).ConfigureAwait(false))!;
                cursor = (string)reply[0]!;
                var keys = (RedisKey[])reply[1]!;
                inFlight.Enqueue((cursor == "0" ? "done" : cursor, copier.CopyAsync(database, keys)));
                while (inFlight.Count >= BatchesInFlight || (cursor == "0" && inFlight.Count > 0))
                {
                    // The cursor is kept only once every batch before it was copied.
                    var (next, copy) = inFlight.Dequeue();
                    await copy.ConfigureAwait(false);
                    if (next == "done" || clock.Elapsed - lastSaved > TimeSpan.FromSeconds(1))
                    {
                        state = await store.WriteWholeAsync(state with { CopyCursors = With(state.CopyCursors, database, next) }, Target).ConfigureAwait(false);
                        lastSaved = clock.Elapsed;
                        progress?.Report(await StatusAsync(Rate("backfill", copier, clock.Elapsed, $"database {database}")).ConfigureAwait(false));
                    }
                }
            }
            while (cursor != "0");
        }

        progress?.Report(await StatusAsync(Rate("backfill done", copier, clock.Elapsed, $"{databases.Length} databases")).ConfigureAwait(false));
        return state;
    }

    /// <summary>SOURCE's databases that hold keys, in order; into a cluster, any but 0 halts the copy: it has nowhere to go.</summary>
    private async Task<int[]> SourceDatabasesAsync(MigrationState state)
    {
        var databases = (await Source.InfoAsync("keyspace").ConfigureAwait(false)).Keys.Keys.Order().ToArray();
        if (Target.IsCluster && databases.FirstOrDefault(d => d != 0) is > 0 and var other)
        {
            throw await HaltCopyAsync(state, $"SOURCE now holds keys in database {other}, and a Redis Cluster (TARGET) has only database 0.",
                "Nothing was switched: writes go on on SOURCE, every instance still tracks them.",
                "Move those keys into database 0 on SOURCE (and the applications that write them), then run 'migrate --sync copy' again, or 'abort'.").ConfigureAwait(false);
        }

        return databases;
    }

    private static string Rate(string what, KeyCopier copier, TimeSpan elapsed, string where) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{what}: {where}: {copier.Counters.Copied:N0} keys copied ({copier.Counters.Copied / Math.Max(elapsed.TotalSeconds, 0.001):N0} keys/s, {copier.Counters.Bytes / Math.Max(elapsed.TotalSeconds, 0.001) / (1 << 20):N1} MB/s), {copier.Counters.TypedKeys:N0} type by type, {copier.Counters.ChunkedKeys:N0} in chunks, {copier.Counters.DeletedKeys:N0} deleted; {copier.Path}");

    private static Dictionary<int, string> With(IReadOnlyDictionary<int, string> cursors, int database, string cursor) =>
        new(cursors) { [database] = cursor };

    /// <summary>
    /// Copies the keys written since, round after round, until a round copies few; a write whose keys were unknown
    /// makes the whole backfill run again.
    /// </summary>
    private async Task<MigrationState> ConvergeAsync(MigrationState state, KeyCopier copier, CancellationToken cancellationToken)
    {
        for (var round = 1; round <= MaxRounds; round++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await AnnounceAsync().ConfigureAwait(false);
            _ = await SourceDatabasesAsync(state).ConfigureAwait(false);
            if (await TakeUnknownAsync().ConfigureAwait(false) > 0)
            {
                progress?.Report(await StatusAsync("an instance wrote keys it could not name: every key is copied again").ConfigureAwait(false));
                state = await BackfillAsync(state with { CopyCursors = state.CopyCursors.ToDictionary(c => c.Key, _ => "0") }, copier, cancellationToken).ConfigureAwait(false);
            }

            var copied = await CopyDirtyAsync(copier, keep: null).ConfigureAwait(false);
            progress?.Report(await StatusAsync($"converging: round {round} copied {copied} keys written meanwhile").ConfigureAwait(false));
            if (copied <= ConvergedKeys)
            {
                break;
            }
        }

        return state;
    }

    private async Task<long> TakeUnknownAsync() =>
        (long?)await Target.Database.StringGetDeleteAsync(MigrationKeys.DirtyUnknown(options.MigrationId)).ConfigureAwait(false) ?? 0;

    /// <summary>
    /// Takes every database's dirty set (renamed aside, so marks arriving meanwhile start a new one) and copies its
    /// keys; a set taken by a coordinator killed before it finished is copied first. Returns how many keys it copied.
    /// </summary>
    private async Task<long> CopyDirtyAsync(KeyCopier copier, List<(int Database, RedisKey Key)>? keep)
    {
        long copied = 0;
        // A cluster has database 0 only (the rounds before the fence halt on any other).
        int[] databases = Target.IsCluster ? [0] : [.. (await Source.InfoAsync("keyspace").ConfigureAwait(false)).Keys.Keys.Union(Enumerable.Range(0, 16)).Order()];

        // Which databases have marks, asked at once: under the fence every round trip is part of the pause.
        var marked = databases.Select(d => (Dirty: Target.Database.KeyExistsAsync(MigrationKeys.Dirty(options.MigrationId, d)),
            Taken: Target.Database.KeyExistsAsync(MigrationKeys.DirtyTaken(options.MigrationId, d)))).ToArray();
        await Task.WhenAll(marked.SelectMany(m => new[] { m.Dirty, m.Taken })).ConfigureAwait(false);
        for (var i = 0; i < databases.Length; i++)
        {
            var database = databases[i];
            var dirty = MigrationKeys.Dirty(options.MigrationId, database);
            var taken = MigrationKeys.DirtyTaken(options.MigrationId, database);
            if (!marked[i].Taken.Result)
            {
                if (!marked[i].Dirty.Result)
                {
                    continue; // no mark since the last take; one arriving now waits for the next
                }

                try
                {
                    await Target.Database.KeyRenameAsync(dirty, taken).ConfigureAwait(false);
                }
                catch (RedisServerException ex) when (ex.Message.Contains("no such key", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
            }

            var batch = new List<RedisKey>(ScanCount);
            await foreach (var member in Target.Database.SetScanAsync(taken, pageSize: ScanCount).ConfigureAwait(false))
            {
                batch.Add((byte[])member!);
                if (batch.Count == ScanCount)
                {
                    copied += await CopyBatchAsync(database, batch).ConfigureAwait(false);
                }
            }

            copied += await CopyBatchAsync(database, batch).ConfigureAwait(false);
            await Target.Database.KeyDeleteAsync(taken).ConfigureAwait(false);
        }

        return copied;

        async Task<long> CopyBatchAsync(int database, List<RedisKey> keys)
        {
            await copier.CopyAsync(database, keys).ConfigureAwait(false);
            keyspace?.Marked(database, keys);
            keep?.AddRange(keys.Select(k => (database, k)));
            var count = keys.Count;
            keys.Clear();
            return count;
        }
    }

    /// <summary>
    /// Compares SOURCE and TARGET while writes go on: every key of every database (or the first
    /// <see cref="CoordinatorOptions.VerifySample"/>). Returns the keys that differ; the fence compares them again.
    /// </summary>
    private async Task<List<(int Database, RedisKey Key)>> VerifyAsync(CancellationToken cancellationToken)
    {
        var differing = new List<(int, RedisKey)>();
        long compared = 0;
        var limit = options.VerifySample > 0 ? options.VerifySample : long.MaxValue;
        foreach (var database in (await Source.InfoAsync("keyspace").ConfigureAwait(false)).Keys.Keys.Order())
        {
            var batch = new List<RedisKey>(ScanCount);
            await foreach (var key in Source.Server.KeysAsync(database, pageSize: ScanCount).ConfigureAwait(false))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (MigrationKeys.IsProtocolKey(key))
                {
                    continue;
                }

                batch.Add(key);
                if (batch.Count == VerifyBatch || compared + batch.Count >= limit)
                {
                    compared += batch.Count;
                    differing.AddRange((await CompareAsync(database, batch).ConfigureAwait(false)).Select(d => (database, d.Key)));
                    batch.Clear();
                    if (compared >= limit)
                    {
                        break;
                    }
                }
            }

            compared += batch.Count;
            differing.AddRange((await CompareAsync(database, batch).ConfigureAwait(false)).Select(d => (database, d.Key)));
        }

        var what = options.VerifySample > 0 ? $"a sample of {compared} keys" : $"every key ({compared})";
        progress?.Report(await StatusAsync($"verified {what} while writes ran: {differing.Count} differed, compared again under the fence").ConfigureAwait(false));
        Verified = $"before the fence: {what}, {differing.Count} differing while writes ran";
        return differing;
    }

    private async Task<List<(int Database, RedisKey Key)>> StillDifferingAsync(List<(int Database, RedisKey Key)> suspects)
    {
        var still = new List<(int, RedisKey)>();
        foreach (var group in suspects.GroupBy(k => k.Database))
        {
            foreach (var chunk in group.Select(k => k.Key).Chunk(ScanCount))
            {
                still.AddRange((await CompareAsync(group.Key, chunk).ConfigureAwait(false)).Select(d => (group.Key, d.Key)));
            }
        }

        return still;
    }

    // When the last fence was issued (the coordinator's clock), to read the instances' switch times against.
    private DateTimeOffset? FencedWallClock { get; set; }

    // How long each step under the fence took, for the final report.
    private string? FenceSteps { get; set; }

    // What the verification before the fence found, for the state once the switch is made.
    private string? Verified { get; set; }

    /// <summary>
    /// The keys of <paramref name="keys"/> whose type, value digest or time to live (beyond the tolerance) differ, with
    /// how. Identical <c>DUMP</c> payloads settle a key at once; anything else (another server's format, an encoding the
    /// type-level copy chose, a real difference) is compared type by type.
    /// </summary>
    private async Task<List<(RedisKey Key, string How)>> CompareAsync(int database, IReadOnlyCollection<RedisKey> keys)
    {
        var from = Source.Connection.GetDatabase(database);
        var to = Target.Connection.GetDatabase(database);
        var quick = keys.Select(k => (Key: k, Dumps: DumpAsync(from, k), Target: DumpAsync(to, k))).ToArray();
        var slow = new List<Task<(RedisKey Key, string? How)>>();
        foreach (var (key, sourceRead, targetRead) in quick)
        {
            var (a, b) = (await sourceRead.ConfigureAwait(false), await targetRead.ConfigureAwait(false));
            if (!(a.Payload is { } payload && b.Payload is { } other && payload.AsSpan().SequenceEqual(other) && CloseEnough(a.TtlMs, b.TtlMs)))
            {
                slow.Add(DifferenceAsync(from, to, key));
            }
        }

        return [.. (await Task.WhenAll(slow).ConfigureAwait(false)).Where(d => d.How is not null).Select(d => (d.Key, d.How!))];
    }

    private static async Task<(byte[]? Payload, long TtlMs)> DumpAsync(IDatabase db, RedisKey key)
    {
        var dump = db.ExecuteAsync("DUMP", key);
        var ttl = db.ExecuteAsync("PTTL", key);
        try
        {
            return ((byte[]?)await dump.ConfigureAwait(false), (long)await ttl.ConfigureAwait(false));
        }
        catch (RedisServerException)
        {
            await ttl.ConfigureAwait(false);
            return (null, (long)ttl.Result); // a server without DUMP: the type-level comparison decides
        }
    }

    private static bool CloseEnough(long a, long b) => (a < 0) == (b < 0) && Math.Abs(a - b) <= TimeToLiveToleranceMs;

    private static async Task<(RedisKey Key, string? How)> DifferenceAsync(IDatabase from, IDatabase to, RedisKey key)
    {
        var (readA, readB) = (TypedValue.ReadAsync(from, key), TypedValue.ReadAsync(to, key));
        var (a, b) = (await readA.ConfigureAwait(false), await readB.ConfigureAwait(false));
        return (key, (a, b) switch
        {
            (null, null) => null,
            (null, _) => "on TARGET only",
            (_, null) => "missing on TARGET",
            _ when a.Type != b.Type => $"type {a.Type} on SOURCE, {b.Type} on TARGET",
            _ when a.Digest() != b.Digest() => "values differ",
            _ when !CloseEnough(a.TimeToLiveMs, b.TimeToLiveMs) => $"time to live {a.TimeToLiveMs} ms on SOURCE, {b.TimeToLiveMs} ms on TARGET",
            _ => null,
        });
    }

    /// <summary>
    /// Holds every instance's writes, copies the last marked keys, compares them and the suspects; null outcome when
    /// everything matches (the writes stay held for the switch), otherwise why the fence was lifted.
    /// </summary>
    private async Task<(MigrationState State, long FencedAt, string? Outcome)> FenceAsync(
        MigrationState state, KeyCopier copier, List<(int Database, RedisKey Key)> suspects, CancellationToken cancellationToken)
    {
        await CopyDirtyAsync(copier, keep: null).ConfigureAwait(false);
        var epoch = TakeEpochAsync(Target);
        state = await EnterCopyAsync(state, MigrationPhase.Fencing).ConfigureAwait(false);
        var fencedAt = time.GetTimestamp();
        FencedWallClock = time.GetUtcNow();
        var directive = await IssueCopyDirectiveAsync(CopyStage.Fence, "copy: cutover fence", epochTaken: epoch).ConfigureAwait(false);
        string? problem = null;
        while (problem is null)
        {
            var live = await instances.LiveAsync().ConfigureAwait(false);
            var open = live.Where(r => r.Problem is not null || r.Fenced != directive.Epoch).ToArray();
            if (live.Count >= options.ExpectedInstances && open.Length == 0)
            {
                break;
            }

            if (time.GetElapsedTime(fencedAt) > options.MaxPause)
            {
                problem = live.Count < options.ExpectedInstances
                    ? $"{live.Count} of at least {options.ExpectedInstances} instances reported within --max-pause {options.MaxPause.TotalMilliseconds:0} ms"
                    : $"{open.Length} of {live.Count} instances did not hold their writes within --max-pause {options.MaxPause.TotalMilliseconds:0} ms: {Names(open)}";
                break;
            }

            await Task.Delay(FencePoll, time, cancellationToken).ConfigureAwait(false);
        }

        if (problem is null)
        {
            var held = time.GetElapsedTime(fencedAt);

            // Read, not taken, beside the last copy (every instance has shipped its marks): when there are any, they
            // stay for the next attempt's full pass.
            var unknown = Target.Database.StringGetAsync(MigrationKeys.DirtyUnknown(options.MigrationId));
            var last = new List<(int Database, RedisKey Key)>();
            await CopyDirtyAsync(copier, last).ConfigureAwait(false);
            last.AddRange(await CopyUnexplainedAsync(copier, fenced: true).ConfigureAwait(false));
            var copied = time.GetElapsedTime(fencedAt);
            if ((long?)await unknown.ConfigureAwait(false) > 0)
            {
                problem = "an instance wrote keys it could not name just before the fence";
            }
            else
            {
                var differing = new List<string>();
                foreach (var group in last.Concat(suspects).Distinct().GroupBy(k => k.Database))
                {
                    differing.AddRange((await CompareAsync(group.Key, group.Select(k => k.Key).ToArray()).ConfigureAwait(false))
                        .Select(d => $"db {group.Key} '{d.Key}': {d.How}"));
                }

                if (differing.Count == 0)
                {
                    FenceSteps = string.Create(CultureInfo.InvariantCulture,
                        $"instances held their writes after {held.TotalMilliseconds:0.0} ms, the last keys were copied at {copied.TotalMilliseconds:0.0} ms and compared at {time.GetElapsedTime(fencedAt).TotalMilliseconds:0.0} ms");
                    Verified = $"{Verified}; under the fence: {last.Count} keys copied last and {suspects.Count} that had differed compared: all equal"
                        + (keyspace is { Active: true } ? $"; keyspace notifications: {UnexplainedWrites} keys written by no instance, copied again" : string.Empty);
                    return (state, fencedAt, null);
                }

                var shown = string.Join("; ", differing.Take(5));
                await IssueCopyDirectiveAsync(CopyStage.Copying, "copy: verification failed").ConfigureAwait(false);
                throw await HaltCopyAsync(await EnterCopyAsync(state, MigrationPhase.Converging).ConfigureAwait(false),
                    $"Verification under the fence found {differing.Count} keys that differ with no write to explain it: {shown}.",
                    "Nothing was switched: writes go on on SOURCE, every instance still tracks them.",
                    "Look for a writer that is not an instance (another client, a script, a cron job), then run 'migrate --sync copy' again, or 'abort'.").ConfigureAwait(false);
            }
        }

        await IssueCopyDirectiveAsync(CopyStage.Copying, "copy: the fence is lifted").ConfigureAwait(false);
        state = await EnterCopyAsync(state, MigrationPhase.Converging).ConfigureAwait(false);
        return (state, fencedAt, problem);
    }

    /// <summary>Records the switch, directs every instance to TARGET, and waits until every live one reports it.</summary>
    private async Task<MigrationStatus> SwitchToTargetAsync(MigrationState state, long? fencedAt, CancellationToken cancellationToken)
    {
        // Recorded before it is issued: from here on, a resumed run only switches (never lifts the fence onto SOURCE).
        var epoch = TakeEpochAsync(Target);
        if (state.Phase != MigrationPhase.Switching)
        {
            state = await EnterCopyAsync(state with { CopyVerified = Verified }, MigrationPhase.Switching).ConfigureAwait(false);
        }

        await IssueCopyDirectiveAsync(null, "copy: every key is on TARGET", RedisSide.Target, promoted: true, epochTaken: epoch).ConfigureAwait(false);

        // Polled fast: every instance holds its writes until it reports TARGET, and this wait is part of the pause.
        var started = time.GetTimestamp();
        var moved = false;
        IReadOnlyList<InstanceReport> live = [];
        while (time.GetElapsedTime(started) < options.InstancesTimeout)
        {
            // Draining does not count here: under the fence nothing was in flight on SOURCE when they left it.
            live = await instances.LiveAsync().ConfigureAwait(false);
            var left = live.Where(r => r.Side != RedisSide.Target).ToArray();
            if (live.Count >= options.ExpectedInstances && left.Length == 0)
            {
                moved = true;
                break;
            }

            var waiting = live.Count < options.ExpectedInstances
                ? $"{live.Count} of at least {options.ExpectedInstances} instances have reported"
                : $"{left.Length} of {live.Count} instances still on SOURCE: {Names(left)}";

            if (time.GetElapsedTime(started) > TimeSpan.FromSeconds(1))
            {
                await AnnounceAsync().ConfigureAwait(false);
                progress?.Report(await StatusAsync(waiting).ConfigureAwait(false));
                await Task.Delay(options.PollInterval, time, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await Task.Delay(FencePoll, time, cancellationToken).ConfigureAwait(false);
            }
        }

        if (!moved)
        {
            throw await HaltCopyAsync(state, $"Not every instance reported TARGET within {options.InstancesTimeout}.",
                "The directive to use TARGET stands; instances that have not moved hold their writes.", "Check the instances named, then run 'migrate --sync copy' again.").ConfigureAwait(false);
        }

        // The hold ends for each instance when it switched (its own clock, stated in its report); the coordinator's
        // clock bounds it from above.
        double? pause = fencedAt is { } at ? time.GetElapsedTime(at).TotalMilliseconds : null;
        if (pause is { } bound && FencedWallClock is { } fencedWall && live.Count > 0 && live.All(r => r.SwitchedAt is not null))
        {
            pause = Math.Min(bound, (live.Max(r => r.SwitchedAt!.Value) - fencedWall).TotalMilliseconds);
        }
        state = await EnterCopyAsync(state with { CopyPauseMs = pause ?? state.CopyPauseMs }, MigrationPhase.Copied).ConfigureAwait(false);
        return await StatusAsync(pause is { } ms
            ? string.Create(CultureInfo.InvariantCulture, $"copied: every instance on TARGET; writes held {ms:0.0} ms (fence to the last instance's switch: {FenceSteps}); {state.CopyVerified}")
            : "copied: every instance on TARGET").ConfigureAwait(false);
    }

    /// <summary>Copy mode's abort: every instance back on SOURCE (held writes run there), tracking stopped; SOURCE was never changed.</summary>
    private async Task<long> AbortCopyAsync(MigrationState state, CancellationToken cancellationToken)
    {
        if (state.Phase is MigrationPhase.Switching or MigrationPhase.Copied)
        {
            throw new PreflightRefusedException(
                $"Migration '{options.MigrationId}' already switched the instances to TARGET; abort would lose what was written there since. Migrate back with a new copy migration from TARGET to SOURCE.");
        }

        await IssueCopyDirectiveAsync(null, "migration aborted").ConfigureAwait(false);
        var back = await WaitAsync(options.InstancesTimeout, async () =>
        {
            await AnnounceAsync().ConfigureAwait(false);
            var live = await instances.LiveAsync().ConfigureAwait(false);
            var still = live.Where(r => r.Side != RedisSide.Source || r.Tracking is not null || r.Armed is not null).ToArray();
            if (live.Count < options.ExpectedInstances)
            {
                // A report that lapsed says nothing: that instance may still hold its writes.
                return (false, $"{live.Count} of at least {options.ExpectedInstances} instances have reported (--expect-instances 0 if they are gone)");
            }

            return still.Length == 0
                ? (true, $"all {live.Count} instances on SOURCE, tracking stopped")
                : (false, $"{still.Length} of {live.Count} instances still tracking or on TARGET: {Names(still)}");
        }, cancellationToken).ConfigureAwait(false);
        if (!back)
        {
            throw await HaltCopyAsync(state, $"Not every instance stopped tracking within {options.InstancesTimeout}.",
                "The directive to use SOURCE stands.", "Check the instances named, then run 'abort' again.").ConfigureAwait(false);
        }

        await EnterCopyAsync(state, MigrationPhase.Aborted).ConfigureAwait(false);
        progress?.Report(await StatusAsync("aborted: every instance on SOURCE, which was never changed; TARGET keeps the partial copy").ConfigureAwait(false));
        return 0;
    }
}
