using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>What <c>migrate</c> would do, step by step, for <c>migrate --dry-run</c>.</summary>
internal static class Plan
{
    public static IReadOnlyList<string> Steps(CoordinatorOptions o) => o.Sync == SyncMode.Copy ? Copy(o) : o.Cutover == CutoverMode.Window ? Window(o) :
    [
        $"replicate: on TARGET, CONFIG SET masterauth (SOURCE's password) and REPLICAOF SOURCE{(o.AllowTargetData ? ", erasing TARGET's keys (--allow-target-data)" : string.Empty)}; wait up to {Format.Duration(o.SyncTimeout)} for the initial sync and a lag under {Format.Bytes(o.MaxLagBytes)}. (Cutover: {(o.Cutover == CutoverMode.Auto ? "handoff when both servers run Redis 6.2 or later, otherwise window" : "handoff")}.)",
        $"arm: replica-read-only yes on both; on SOURCE, CONFIG SET masterauth (TARGET's password); direct every instance to connect to TARGET ahead of time; wait up to {Format.Duration(o.InstancesTimeout)} until {Format.Count(o.ExpectedInstances)} or more live instances are armed, none unarmed.",
        $"hand off: CLIENT PAUSE WRITE on SOURCE (at most {Format.Duration(o.MaxPause)}); wait until TARGET has SOURCE's whole stream; seal SOURCE (min-replicas-to-write it cannot meet); REPLICAOF NO ONE on TARGET; REPLICAOF TARGET on SOURCE; lift the pause (held writes fail READONLY and armed instances send them to TARGET); put SOURCE's min-replicas settings back.",
        $"confirm: direct every instance to TARGET; wait up to {Format.Duration(o.InstancesTimeout)} until every live instance reports TARGET; 'rollback' hands back the same way, 'finish' ends the migration.",
    ];

    private static IReadOnlyList<string> Window(CoordinatorOptions o) =>
    [
        $"replicate: on TARGET, CONFIG SET masterauth (SOURCE's password) and REPLICAOF SOURCE{(o.AllowTargetData ? ", erasing TARGET's keys (--allow-target-data)" : string.Empty)}; wait up to {Format.Duration(o.SyncTimeout)} for the initial sync and a lag under {Format.Bytes(o.MaxLagBytes)}.",
        $"cutover: on TARGET, CONFIG SET replica-read-only no (TARGET becomes writable); wait up to {Format.Duration(o.InstancesTimeout)} until {Format.Count(o.ExpectedInstances)} or more live instances report TARGET, none on SOURCE or draining it. Flip the instances then.",
        $"promote: direct new instances to TARGET; arm the fence (SOURCE's min-replicas-to-write); pause SOURCE's writes (at most {Format.Duration(o.PromotionTimeout)}) until TARGET has SOURCE's whole stream; REPLICAOF NO ONE on TARGET; lift the pause; clear TARGET's masterauth; BGSAVE on SOURCE; wait until every live instance reports TARGET.",
    ];

    private static IReadOnlyList<string> Copy(CoordinatorOptions o) =>
    [
        $"writers: CLIENT LIST on SOURCE, now and before each fence: {(o.AllowUnknownClients ? "clients that are no instance (or a refused list) are named, and the copy goes on (--allow-unknown-clients)" : "a client that is no instance, or a refused list, stops the copy (--allow-unknown-clients to go on)")}; where SOURCE sends keyspace notifications, keys changed that no instance marked are copied again under the fence and named.",
        $"track: direct every instance (on TARGET, announced on both channels) to track its writes; wait up to {Format.Duration(o.InstancesTimeout)} until {Format.Count(o.ExpectedInstances)} or more live instances track them. SOURCE is only read, never written or reconfigured.",
        $"backfill: SCAN every database of SOURCE; DUMP and RESTORE each key on TARGET with its time to live (type-level commands where TARGET refuses the payload; keys over {Format.Bytes(o.BigKeyBytes)} in chunks, renamed into place){(o.AllowTargetData ? "; TARGET's own keys stay unless SOURCE has them (--allow-target-data)" : string.Empty)}; {(o.CopyConnections == CopyConnections.Own ? "over the copy's own connections where both sides allow them (--copy-connections)" : "through StackExchange.Redis (--copy-connections shared)")}.",
        $"converge: copy the keys the instances wrote meanwhile, round after round, until few are left; compare {(o.VerifySample > 0 ? $"a sample of {o.VerifySample} keys" : "every key")} (type, value digest, time to live within 1 s).",
        $"fence: every instance holds its writes (at most {Format.Duration(o.MaxPause)} to say so); copy the last keys written; compare them and the ones that differed; a difference nothing explains stops here, writes go on on SOURCE.",
        $"switch: direct every instance to TARGET, where its held writes run; wait up to {Format.Duration(o.InstancesTimeout)} until every live instance reports TARGET.",
    ];
}
