using System.CommandLine;
using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>The verbs of <c>redis-hotswap</c>, each a thin call into <see cref="MigrationCoordinator"/>.</summary>
internal static class Commands
{
    private static readonly Option<string> Source = new("--source")
    {
        Description = "SOURCE's StackExchange.Redis configuration string (or REDIS_HOTSWAP_SOURCE).",
    };

    private static readonly Option<string> Target = new("--target")
    {
        Description = "TARGET's StackExchange.Redis configuration string (or REDIS_HOTSWAP_TARGET).",
    };

    private static readonly Option<string> Migration = new("--migration")
    {
        Description = "The migration id; applications set the same RedisHotSwap:MigrationId (or REDIS_HOTSWAP_MIGRATION).",
    };

    private static readonly Option<bool> Json = new("--json") { Description = "Write JSON (one object per line) instead of tables." };

    private static readonly Option<bool> AllowTargetData = new("--allow-target-data") { Description = "Accept a TARGET that holds data; REPLICAOF erases it." };

    private static readonly Option<int> ExpectInstances = new("--expect-instances")
    {
        Description = "How many live instances must report before the cutover can end.",
        DefaultValueFactory = _ => 1,
    };

    private static readonly Option<TimeSpan> SyncTimeout = new("--sync-timeout") { Description = "Longest initial sync.", DefaultValueFactory = _ => TimeSpan.FromMinutes(30) };

    private static readonly Option<TimeSpan> InstancesTimeout = new("--instances-timeout")
    {
        Description = "Longest wait for every instance to move.",
        DefaultValueFactory = _ => TimeSpan.FromMinutes(30),
    };

    private static readonly Option<TimeSpan> PromotionTimeout = new("--promotion-timeout")
    {
        Description = "Longest write pause on SOURCE while TARGET catches up before promotion.",
        DefaultValueFactory = _ => TimeSpan.FromSeconds(30),
    };

    private static readonly Option<long> MaxLag = new("--max-lag")
    {
        Description = "Bytes TARGET may trail SOURCE before the writable window opens.",
        DefaultValueFactory = _ => 64 * 1024,
    };

    private static readonly Option<TimeSpan> PollInterval = new("--poll-interval")
    {
        Description = "How often servers and instances are read while waiting.",
        DefaultValueFactory = _ => TimeSpan.FromMilliseconds(250),
    };

    private static readonly Option<CutoverMode> Cutover = new("--cutover")
    {
        Description = "handoff (instances armed ahead, FAILOVER, milliseconds of pause, reversible with 'rollback') or window (writable replica while operators flip instances). Default: handoff when both servers run Redis 6.2 or later.",
        DefaultValueFactory = _ => CutoverMode.Auto,
    };

    private static readonly Option<TimeSpan> MaxPause = new("--max-pause")
    {
        Description = "Handoff: the longest SOURCE's writes may be held while TARGET takes the last of the stream; past it the handoff is called off.",
        DefaultValueFactory = _ => TimeSpan.FromSeconds(2),
    };

    public static RootCommand Build()
    {
        var root = new RootCommand("Moves a live application from one Redis server to another with zero downtime.")
        {
            Verb("check", "Preflight only: refuses (exit 2) and changes nothing when the migration cannot start.", async (c, _) => { await c.CheckAsync(); return null; }),
            Verb("replicate", "Makes TARGET a replica of SOURCE and waits for the initial sync.", async (c, ct) => { await c.ReplicateAsync(ct); return null; }),
            Verb("cutover", "Opens TARGET for writes and waits until every instance reports TARGET.", async (c, ct) => { await c.CutoverAsync(ct); return null; }),
            Verb("promote", "Fences SOURCE's writes, waits for TARGET to catch up, promotes TARGET, snapshots SOURCE.", async (c, ct) => await c.PromoteAsync(ct)),
            Verb("migrate", "Every phase end to end; exit 0 once TARGET is the primary and every instance reports it. After 'rollback', hands over to TARGET again.", async (c, ct) => await c.MigrateAsync(ct)),
            Verb("rollback", "After a handoff: hands the primary role back to SOURCE the same way; exit 0 once SOURCE is primary, TARGET its replica, every instance on SOURCE.", async (c, ct) => await c.RollbackAsync(ct)),
            Verb("finish", "Ends the migration on the side that is primary: the other stops replicating, refuses writes and is snapshotted; instances stay.", async (c, ct) => await c.FinishAsync(ct)),
            Verb("abort", "Before promotion: instances back to SOURCE, TARGET detached.", async (c, ct) =>
            {
                await c.AbortAsync(ct);
                return null;
            }),
            Verb("status", "Phase, replication link, lag, keys per database, and every instance.", async (c, _) => await c.StatusAsync()),
        };
        return root;
    }

    private static Command Verb(string name, string description, Func<MigrationCoordinator, CancellationToken, Task<MigrationStatus?>> run)
    {
        var command = new Command(name, description)
        {
            Source, Target, Migration, Json, AllowTargetData, ExpectInstances, SyncTimeout, InstancesTimeout, PromotionTimeout, PollInterval, MaxLag, Cutover, MaxPause,
        };
        command.SetAction((parse, ct) => Runner.RunAsync(name, Options(parse), parse.GetValue(Json), run, ct));
        return command;
    }

    private static CoordinatorOptions Options(ParseResult parse) => new()
    {
        Source = OrEnvironment(parse.GetValue(Source), "REDIS_HOTSWAP_SOURCE"),
        Target = OrEnvironment(parse.GetValue(Target), "REDIS_HOTSWAP_TARGET"),
        MigrationId = OrEnvironment(parse.GetValue(Migration), "REDIS_HOTSWAP_MIGRATION"),
        AllowTargetData = parse.GetValue(AllowTargetData),
        ExpectedInstances = parse.GetValue(ExpectInstances),
        SyncTimeout = parse.GetValue(SyncTimeout),
        InstancesTimeout = parse.GetValue(InstancesTimeout),
        PromotionTimeout = parse.GetValue(PromotionTimeout),
        PollInterval = parse.GetValue(PollInterval),
        MaxLagBytes = parse.GetValue(MaxLag),
        Cutover = parse.GetValue(Cutover),
        MaxPause = parse.GetValue(MaxPause),
    };

    // Not a default value: help prints defaults, and these hold passwords.
    private static string OrEnvironment(string? value, string variable) =>
        string.IsNullOrEmpty(value) ? Environment.GetEnvironmentVariable(variable) ?? string.Empty : value;
}
