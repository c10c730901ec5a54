using RedisHotSwap.Coordinator.Servers;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>Checks that the migration can start (or continue); changes nothing.</summary>
    /// <exception cref="PreflightRefusedException">One line per problem, each with its remedy.</exception>
    public async Task CheckAsync()
    {
        var state = await ReadStateAsync().ConfigureAwait(false);
        if (UsesCopy(state))
        {
            await CheckCopyAsync(state).ConfigureAwait(false);
            return;
        }

        if (Source.IsCluster || Target.IsCluster)
        {
            // Cluster nodes refuse REPLICAOF of a server outside their cluster.
            throw new PreflightRefusedException($"{(Source.IsCluster ? "SOURCE" : "TARGET")} is a Redis Cluster, which replication cannot move data into or out of; migrate into a cluster with --sync copy (from a single server).");
        }

        var source = await Source.InfoAsync().ConfigureAwait(false);
        var target = await Target.InfoAsync().ConfigureAwait(false);
        var refusals = new List<string>();
        var maxMemoryText = await ConfigOrRefusalAsync(Target, "maxmemory", refusals).ConfigureAwait(false);
        await ConfigOrRefusalAsync(Source, "min-replicas-to-write", refusals).ConfigureAwait(false);
        var maxMemory = long.TryParse(maxMemoryText, out var configured) ? configured : 0; // 0: no limit
        var problems = PreflightRules.Problems(new PreflightFacts(
            source, target, maxMemory, target.IsReplica && ReplicatesSource(target), state.Phase, options.AllowTargetData, options.MigrationId))
            .Concat(refusals).ToArray();
        if (problems.Length > 0)
        {
            throw new PreflightRefusedException(problems);
        }
    }

    // The coordinator reads and sets configuration on both sides (masterauth, replica-read-only, the fence).
    private static async Task<string?> ConfigOrRefusalAsync(RedisNode node, string key, List<string> refusals)
    {
        try
        {
            return await node.ConfigGetAsync(key).ConfigureAwait(false);
        }
        catch (StackExchange.Redis.RedisServerException ex)
        {
            refusals.Add($"{node.Name} refuses CONFIG ({ex.Message.Split('\n')[0]}); connect with a user allowed CONFIG, REPLICAOF, CLIENT and INFO.");
            return null;
        }
    }

    private bool ReplicatesSource(ServerInfo target) =>
        target.MasterPort == Source.Port
        && (string.Equals(target.MasterHost, Source.Host, StringComparison.OrdinalIgnoreCase)
            || (IsLoopback(target.MasterHost) && IsLoopback(Source.Host)));

    private static bool IsLoopback(string host) => host is "127.0.0.1" or "localhost" or "::1";
}

/// <summary>What preflight decides on, read from both servers and the state.</summary>
internal sealed record PreflightFacts(
    ServerInfo Source, ServerInfo Target, long TargetMaxMemory, bool TargetReplicatesSource, MigrationPhase Phase, bool AllowTargetData, string MigrationId);

/// <summary>The preflight rules, pure: each failing rule is one line naming the problem and the remedy.</summary>
internal static class PreflightRules
{
    public static IReadOnlyList<string> Problems(PreflightFacts facts)
    {
        var (source, target) = (facts.Source, facts.Target);
        var problems = new List<string>();

        if (source.RunId == target.RunId)
        {
            problems.Add($"SOURCE and TARGET are the same server (run_id {source.RunId}); point --target at the server you are moving to.");
        }

        if (source.IsReplica)
        {
            problems.Add($"SOURCE is itself a replica of {source.MasterHost}:{source.MasterPort}; give its primary as --source.");
        }

        if (target.IsReplica && !facts.TargetReplicatesSource)
        {
            problems.Add($"TARGET is already a replica of {target.MasterHost}:{target.MasterPort}; detach it (REPLICAOF NO ONE) or choose another TARGET.");
        }

        if (facts.Phase == MigrationPhase.New && !facts.TargetReplicatesSource && target.TotalKeys > 0 && !facts.AllowTargetData)
        {
            problems.Add($"TARGET holds {target.TotalKeys} keys that REPLICAOF would erase; empty it (FLUSHALL) or pass --allow-target-data.");
        }

        if (target.Version < source.Version)
        {
            problems.Add($"TARGET runs Redis {target.Version}, older than SOURCE's {source.Version}; a replica must not be older than its primary: upgrade TARGET.");
        }

        if (facts.TargetMaxMemory > 0 && facts.TargetMaxMemory < source.UsedMemory)
        {
            problems.Add($"TARGET's maxmemory ({facts.TargetMaxMemory} bytes) is below SOURCE's used memory ({source.UsedMemory} bytes); raise it (CONFIG SET maxmemory) before migrating.");
        }

        if (facts.Phase is MigrationPhase.Promoted or MigrationPhase.Aborted)
        {
            problems.Add($"Migration '{facts.MigrationId}' is already {facts.Phase.ToString().ToLowerInvariant()}; use a new --migration id to start another.");
        }

        return problems;
    }
}
