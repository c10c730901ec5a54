using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>What <c>migrate</c> would do, step by step, for <c>migrate --dry-run</c>.</summary>
internal static class Plan
{
    public static IReadOnlyList<string> Steps(CoordinatorOptions o) => o.Cutover == CutoverMode.Window ? Window(o) :
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
}
