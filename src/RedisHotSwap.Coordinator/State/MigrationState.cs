using System.Collections.Immutable;
using System.Globalization;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.State;

/// <summary>
/// What the coordinator must remember between runs. Kept in Redis beside the data (it replicates with it), never in
/// the coordinator's memory: a coordinator killed in any phase continues from here when run again.
/// </summary>
internal sealed record MigrationState
{
    /// <summary>The phase reached.</summary>
    public MigrationPhase Phase { get; init; }

    /// <summary>Increases with every write; of the copies on SOURCE and TARGET, the higher wins.</summary>
    public long Revision { get; init; }

    /// <summary>TARGET's replication id when the writable window opened; a change means a full resync erased writes.</summary>
    public string? WindowReplicationId { get; init; }

    /// <summary>SOURCE's count of full resyncs when the writable window opened.</summary>
    public long WindowFullSyncs { get; init; }

    /// <summary>SOURCE's replication id when promotion began: TARGET keeps it as master_replid2 once this migration promotes it.</summary>
    public string? PromotionReplicationId { get; init; }

    /// <summary>
    /// The run id of the server being promoted, read before the fence: a server restarted since (with older data,
    /// perhaps, and answering as a primary) is never taken for the one that was promoted.
    /// </summary>
    public string? SuccessorRunId { get; init; }

    /// <summary>The fenced side's min-replicas-to-write before the fence raised it, to put back.</summary>
    public string? SourceMinReplicas { get; init; }

    /// <summary>The fenced side's min-replicas-max-lag before the fence, to put back.</summary>
    public string? FencedMaxLag { get; init; }

    /// <summary>The cutover mode this migration runs; null until it is chosen.</summary>
    public CutoverMode? Cutover { get; init; }

    /// <summary>In a handoff, the side the primary role is being (or was last) handed to.</summary>
    public RedisSide? HandoffTo { get; init; }

    /// <summary>The last handoff's write pause as the coordinator saw it: from FAILOVER sent to the new primary answering as one.</summary>
    public double? HandoffPauseMs { get; init; }

    /// <summary>When the last handoff promoted the new primary (Unix milliseconds, the coordinator's clock).</summary>
    public long? HandoffPromotedAt { get; init; }

    /// <summary>The last handoff: from the promotion until the last instance reported that it had switched.</summary>
    public double? HandoffLastSwitchMs { get; init; }

    /// <summary>How TARGET gets SOURCE's data; null until chosen (replication for migrations older than copy mode).</summary>
    public SyncMode? Sync { get; init; }

    /// <summary>Copy: the backfill's SCAN cursor per database ("done" once the database is copied).</summary>
    public IReadOnlyDictionary<int, string> CopyCursors { get; init; } = new Dictionary<int, string>();

    /// <summary>
    /// The settings the migration changed beside the fence, as they were before its first change, by
    /// <c>source:key</c> or <c>target:key</c>; put back when it ends. A secret's value is never recorded.
    /// </summary>
    public ImmutableDictionary<string, string> OriginalSettings { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>Copy: what the last verification compared and found.</summary>
    public string? CopyVerified { get; init; }

    /// <summary>Copy: the writes' hold at the switch, from the fence to the last instance on TARGET (milliseconds).</summary>
    public double? CopyPauseMs { get; init; }

    /// <summary>When each phase began (Unix milliseconds).</summary>
    public IReadOnlyDictionary<MigrationPhase, long> Started { get; init; } = new Dictionary<MigrationPhase, long>();

    /// <summary>When each phase ended (Unix milliseconds).</summary>
    public IReadOnlyDictionary<MigrationPhase, long> Ended { get; init; } = new Dictionary<MigrationPhase, long>();

    /// <summary>Why the last run stopped, if it did.</summary>
    public string? Halted { get; init; }

    internal HashEntry[] ToHash()
    {
        var entries = new List<HashEntry>
        {
            new("phase", Phase.ToString()),
            new("revision", Revision),
            new("window-replid", WindowReplicationId ?? string.Empty),
            new("window-sync-full", WindowFullSyncs),
            new("halted", Halted ?? string.Empty),
            new("promotion-replid", PromotionReplicationId ?? string.Empty),
            new("successor-run-id", SuccessorRunId ?? string.Empty),
            new("source-min-replicas", SourceMinReplicas ?? string.Empty),
            new("fenced-max-lag", FencedMaxLag ?? string.Empty),
            new("cutover", Cutover?.ToString() ?? string.Empty),
            new("handoff-to", HandoffTo?.ToString() ?? string.Empty),
            new("handoff-promoted-at", HandoffPromotedAt?.ToString(CultureInfo.InvariantCulture) ?? string.Empty),
            new("handoff-pause-ms", HandoffPauseMs?.ToString("R", CultureInfo.InvariantCulture) ?? string.Empty),
            new("handoff-last-switch-ms", HandoffLastSwitchMs?.ToString("R", CultureInfo.InvariantCulture) ?? string.Empty),
        };
        entries.Add(new("sync", Sync?.ToString() ?? string.Empty));
        entries.Add(new("copy-verified", CopyVerified ?? string.Empty));
        entries.Add(new("copy-pause-ms", CopyPauseMs?.ToString("R", CultureInfo.InvariantCulture) ?? string.Empty));
        entries.AddRange(OriginalSettings.Select(p => new HashEntry($"original:{p.Key}", p.Value)));
        entries.AddRange(CopyCursors.Select(p => new HashEntry($"copy-cursor:{p.Key.ToString(CultureInfo.InvariantCulture)}", p.Value)));
        entries.AddRange(Started.Select(p => new HashEntry($"started:{p.Key}", p.Value)));
        entries.AddRange(Ended.Select(p => new HashEntry($"ended:{p.Key}", p.Value)));
        return [.. entries];
    }

    internal static MigrationState? FromHash(HashEntry[] hash)
    {
        if (hash.Length == 0)
        {
            return null;
        }

        var fields = hash.ToDictionary(e => (string)e.Name!, e => (string?)e.Value ?? string.Empty);
        Dictionary<MigrationPhase, long> Times(string prefix) => fields
            .Where(f => f.Key.StartsWith(prefix, StringComparison.Ordinal) && Enum.TryParse<MigrationPhase>(f.Key[prefix.Length..], out _))
            .ToDictionary(f => Enum.Parse<MigrationPhase>(f.Key[prefix.Length..]), f => long.Parse(f.Value, CultureInfo.InvariantCulture));

        return new MigrationState
        {
            Phase = Enum.TryParse<MigrationPhase>(fields.GetValueOrDefault("phase"), out var phase) ? phase : MigrationPhase.New,
            Revision = long.TryParse(fields.GetValueOrDefault("revision"), CultureInfo.InvariantCulture, out var revision) ? revision : 0,
            WindowReplicationId = fields.GetValueOrDefault("window-replid") is { Length: > 0 } id ? id : null,
            WindowFullSyncs = long.TryParse(fields.GetValueOrDefault("window-sync-full"), CultureInfo.InvariantCulture, out var full) ? full : 0,
            Halted = fields.GetValueOrDefault("halted") is { Length: > 0 } halted ? halted : null,
            PromotionReplicationId = fields.GetValueOrDefault("promotion-replid") is { Length: > 0 } replid ? replid : null,
            SuccessorRunId = fields.GetValueOrDefault("successor-run-id") is { Length: > 0 } runId ? runId : null,
            SourceMinReplicas = fields.GetValueOrDefault("source-min-replicas") is { Length: > 0 } min ? min : null,
            FencedMaxLag = fields.GetValueOrDefault("fenced-max-lag") is { Length: > 0 } lag ? lag : null,
            Cutover = Enum.TryParse<CutoverMode>(fields.GetValueOrDefault("cutover"), out var cutover) ? cutover : null,
            HandoffTo = Enum.TryParse<RedisSide>(fields.GetValueOrDefault("handoff-to"), out var to) ? to : null,
            HandoffPromotedAt = long.TryParse(fields.GetValueOrDefault("handoff-promoted-at"), CultureInfo.InvariantCulture, out var at) ? at : null,
            HandoffPauseMs = double.TryParse(fields.GetValueOrDefault("handoff-pause-ms"), CultureInfo.InvariantCulture, out var pause) ? pause : null,
            HandoffLastSwitchMs = double.TryParse(fields.GetValueOrDefault("handoff-last-switch-ms"), CultureInfo.InvariantCulture, out var last) ? last : null,
            Sync = Enum.TryParse<SyncMode>(fields.GetValueOrDefault("sync"), out var sync) ? sync : null,
            CopyVerified = fields.GetValueOrDefault("copy-verified") is { Length: > 0 } verified ? verified : null,
            CopyPauseMs = double.TryParse(fields.GetValueOrDefault("copy-pause-ms"), CultureInfo.InvariantCulture, out var copyPause) ? copyPause : null,
            CopyCursors = fields
                .Where(f => f.Key.StartsWith("copy-cursor:", StringComparison.Ordinal) && int.TryParse(f.Key["copy-cursor:".Length..], CultureInfo.InvariantCulture, out _))
                .ToDictionary(f => int.Parse(f.Key["copy-cursor:".Length..], CultureInfo.InvariantCulture), f => f.Value),
            OriginalSettings = fields
                .Where(f => f.Key.StartsWith("original:", StringComparison.Ordinal))
                .ToImmutableDictionary(f => f.Key["original:".Length..], f => f.Value),
            Started = Times("started:"),
            Ended = Times("ended:"),
        };
    }

    /// <summary>This state moved to <paramref name="phase"/> at <paramref name="now"/>, closing the current phase.</summary>
    public MigrationState Enter(MigrationPhase phase, DateTimeOffset now)
    {
        var started = new Dictionary<MigrationPhase, long>(Started);
        var ended = new Dictionary<MigrationPhase, long>(Ended);
        if (Phase != phase && started.ContainsKey(Phase))
        {
            ended[Phase] = now.ToUnixTimeMilliseconds();
        }

        started.TryAdd(phase, now.ToUnixTimeMilliseconds());
        if (phase is MigrationPhase.Promoted or MigrationPhase.Aborted or MigrationPhase.RolledBack or MigrationPhase.Finished or MigrationPhase.Copied)
        {
            ended.TryAdd(phase, now.ToUnixTimeMilliseconds()); // an outcome, not a phase that lasts
        }

        return this with { Phase = phase, Started = started, Ended = ended, Halted = null };
    }
}
