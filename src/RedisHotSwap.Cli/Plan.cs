using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>What <c>migrate</c> would do, step by step, for <c>migrate --dry-run</c>.</summary>
internal static class Plan
{
    public static IReadOnlyList<string> Steps(CoordinatorOptions o) =>
    [
        $"replicate: on TARGET, CONFIG SET masterauth (SOURCE's password) and REPLICAOF SOURCE{(o.AllowTargetData ? ", erasing TARGET's keys (--allow-target-data)" : string.Empty)}; wait up to {Format.Duration(o.SyncTimeout)} for the initial sync and a lag under {Format.Bytes(o.MaxLagBytes)}.",
        $"cutover: on TARGET, CONFIG SET replica-read-only no (TARGET becomes writable); wait up to {Format.Duration(o.InstancesTimeout)} until {Format.Count(o.ExpectedInstances)} or more live instances report TARGET, none on SOURCE or draining it. Flip the instances then.",
        $"promote: direct new instances to TARGET; arm the fence (SOURCE's min-replicas-to-write); pause SOURCE's writes (at most {Format.Duration(o.PromotionTimeout)}) until TARGET has SOURCE's whole stream; REPLICAOF NO ONE on TARGET; lift the pause; clear TARGET's masterauth; BGSAVE on SOURCE; wait until every live instance reports TARGET.",
    ];
}
