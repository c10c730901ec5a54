using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>
/// The verbs of <c>redis-hotswap</c>. A verb is one line in <see cref="Build"/>: its name, what it does, an example,
/// the options that are its own (every verb also takes <see cref="Common"/>), and a thin call into
/// <see cref="MigrationCoordinator"/>. An option is declared once, below, with what it sets in
/// <see cref="CoordinatorOptions"/>.
/// </summary>
internal static class Commands
{
    private static readonly Setting Source = Setting.Text("--source", "SOURCE's StackExchange.Redis configuration string (or REDIS_HOTSWAP_SOURCE).", "REDIS_HOTSWAP_SOURCE", (o, v) => o.Source = v);
    private static readonly Setting Target = Setting.Text("--target", "TARGET's StackExchange.Redis configuration string (or REDIS_HOTSWAP_TARGET).", "REDIS_HOTSWAP_TARGET", (o, v) => o.Target = v);
    private static readonly Setting Migration = Setting.Text(
        "--migration", "The migration id; applications set the same RedisHotSwap:MigrationId (or REDIS_HOTSWAP_MIGRATION).", "REDIS_HOTSWAP_MIGRATION", (o, v) => o.MigrationId = v);

    private static readonly Setting PollInterval = Setting.Of("--poll-interval", "How often servers and instances are read while waiting.", TimeSpan.FromMilliseconds(250), (o, v) => o.PollInterval = v, hidden: true);
    private static readonly Setting AllowTargetData = Setting.Of("--allow-target-data", "Accept a TARGET that holds data; REPLICAOF erases it.", false, (o, v) => o.AllowTargetData = v);
    private static readonly Setting AllowUnknownClients = Setting.Of(
        "--allow-unknown-clients", "Promote (in copy mode: copy and cut over) although SOURCE has clients that are neither registered instances, replicas nor a coordinator (or CLIENT LIST is refused); their writes fail there afterwards (copy mode: go untracked).", false, (o, v) => o.AllowUnknownClients = v);
    private static readonly Setting DiscardTargetWrites = Setting.Of(
        "--discard-target-writes", "Abort although keys were changed on TARGET during the window; abort counts them first and, without this option, refuses while there are any.", false, (o, v) => o.DiscardTargetWrites = v);
    private static readonly Setting ExpectInstances = Setting.Of("--expect-instances", "How many live instances must report before the cutover can end.", 1, (o, v) => o.ExpectedInstances = v);
    private static readonly Setting SyncTimeout = Setting.Of("--sync-timeout", "Longest initial sync.", TimeSpan.FromMinutes(30), (o, v) => o.SyncTimeout = v);
    private static readonly Setting InstancesTimeout = Setting.Of("--instances-timeout", "Longest wait for every instance to move.", TimeSpan.FromMinutes(30), (o, v) => o.InstancesTimeout = v);
    private static readonly Setting PromotionTimeout = Setting.Of("--promotion-timeout", "Longest write pause on SOURCE while TARGET catches up before promotion.", TimeSpan.FromSeconds(30), (o, v) => o.PromotionTimeout = v);
    private static readonly Setting MaxLag = Setting.Of("--max-lag", "Bytes TARGET may trail SOURCE before the writable window opens or the handoff starts.", 64L * 1024, (o, v) => o.MaxLagBytes = v);
    private static readonly Setting Cutover = Setting.Of(
        "--cutover",
        "handoff: instances armed ahead, writes held milliseconds while the primary role moves, reversible with 'rollback'; window: TARGET a writable replica while operators flip the instances. Default: handoff when both servers run Redis 6.2 or later.",
        CutoverMode.Auto,
        (o, v) => o.Cutover = v);

    private static readonly Setting Sync = Setting.Of(
        "--sync",
        "replication: TARGET replicates SOURCE (REPLICAOF, CONFIG; the default); copy: the coordinator copies every key while the instances track their writes, for servers that refuse replication (managed services, Garnet, a cluster TARGET); SOURCE is only read. --cutover applies to replication only.",
        SyncMode.Replication,
        (o, v) => o.Sync = v);

    private static readonly Setting VerifySample = Setting.Of("--verify-sample", "Copy: how many keys to compare before the switch; 0 compares every key.", 0L, (o, v) => o.VerifySample = v);
    private static readonly Setting BigKeyBytes = Setting.Of("--big-key-bytes", "Copy: keys estimated larger than this are copied in chunks and renamed into place.", 8L << 20, (o, v) => o.BigKeyBytes = v);

    private static readonly Setting CopyConnections = Setting.Of(
        "--copy-connections",
        "Copy: own: the copy's own lean connections where both sides are one server named directly (TLS included); shared: every copy command through StackExchange.Redis (always into a cluster, through a Sentinel or a tunnel).",
        Coordinator.CopyConnections.Own,
        (o, v) => o.CopyConnections = v);

    private static readonly Setting MaxPause = Setting.Of("--max-pause", "Handoff: the longest writes are held while the primary role moves; past half of it the handoff is called off and nothing changes.", TimeSpan.FromSeconds(2), (o, v) => o.MaxPause = v);

    private static readonly Option<bool> Json = new("--json") { Description = "Write JSON events (one object per line, ISO-8601 timestamps, durations in seconds) instead of tables." };
    private static readonly Option<bool> DryRun = new("--dry-run") { Description = "Check and print the plan; change nothing." };
    private static readonly Option<bool> Watch = new("--watch") { Description = "Refresh every two seconds until Ctrl+C." };

    /// <summary>Every verb takes these.</summary>
    private static readonly Setting[] Common = [Source, Target, Migration, PollInterval];

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> Examples = new();

    public static RootCommand Build()
    {
        var root = Verbs();
        var help = root.Options.OfType<HelpOption>().Single();
        help.Action = new HelpWithExample((HelpAction)help.Action!, Examples);
        return root;
    }

    private static RootCommand Verbs() => new("Moves a live application from one Redis server to another with zero downtime.")
    {
        Verb("check", "Preflight only: lists what it checked and says ready, or refuses (exit 2); changes nothing.", "check --migration orders-2026-11",
            [AllowTargetData, Sync], async run => await run.Coordinator.CheckAsync()),
        Verb("replicate", "Makes TARGET a replica of SOURCE and waits for the initial sync.", "replicate --migration orders-2026-11 --max-lag 65536",
            [AllowTargetData, SyncTimeout, MaxLag], async run => await run.Coordinator.ReplicateAsync(run.Cancellation)),
        Verb("cutover", "Opens TARGET for writes and waits until every instance reports TARGET.", "cutover --migration orders-2026-11 --expect-instances 12",
            [ExpectInstances, InstancesTimeout], async run => await run.Coordinator.CutoverAsync(run.Cancellation)),
        Verb("promote", "Fences SOURCE's writes, waits for TARGET to catch up, promotes TARGET, snapshots SOURCE.", "promote --migration orders-2026-11 --expect-instances 12",
            [ExpectInstances, InstancesTimeout, PromotionTimeout, AllowUnknownClients], async run => run.Show(await run.Coordinator.PromoteAsync(run.Cancellation))),
        Verb("migrate", "Every phase end to end; exit 0 once TARGET is the primary and every instance reports it. After 'rollback', hands over to TARGET again.", "migrate --migration orders-2026-11 --expect-instances 12",
            [AllowTargetData, ExpectInstances, SyncTimeout, InstancesTimeout, PromotionTimeout, MaxLag, Cutover, MaxPause, AllowUnknownClients, Sync, VerifySample, BigKeyBytes, CopyConnections], Migrate, [DryRun]),
        Verb("rollback", "After a handoff: hands the primary role back to SOURCE the same way; exit 0 once SOURCE is primary, TARGET its replica, every instance on SOURCE.", "rollback --migration orders-2026-11 --expect-instances 12",
            [ExpectInstances, InstancesTimeout, MaxLag, MaxPause, AllowUnknownClients], async run => run.Show(await run.Coordinator.RollbackAsync(run.Cancellation))),
        Verb("finish", "Ends the migration on the side that is primary: the other stops replicating, refuses writes and is snapshotted; instances stay.", "finish --migration orders-2026-11",
            [PromotionTimeout], async run => run.Show(await run.Coordinator.FinishAsync(run.Cancellation))),
        Verb("abort", "Before promotion: counts the keys changed on TARGET during the window (refused while any, without --discard-target-writes), instances back to SOURCE, TARGET detached.", "abort --migration orders-2026-11",
            [InstancesTimeout, ExpectInstances, DiscardTargetWrites], async run => await run.Coordinator.AbortAsync(run.Cancellation)),
        Verb("status", "Phase, replication link, lag, keys per database, and every instance.", "status --migration orders-2026-11 --watch",
            [ExpectInstances], Status, [Watch]),
    };

    /// <summary>
    /// Parses and runs; a command line that does not parse is one line (its first problem, and the remedy) and exit
    /// code 2. No value from the command line is repeated in it: any could be a password.
    /// </summary>
    public static async Task<int> InvokeAsync(string[] args)
    {
        var parse = Build().Parse(args);
        if (parse.Errors.Count == 0)
        {
            return await parse.InvokeAsync();
        }

        var verb = parse.CommandResult.Command is RootCommand ? string.Empty : $" {parse.CommandResult.Command.Name}";
        var error = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parse.Errors[0]; // the misspelling, not its consequence
        var line = $"{Unechoed(error.Message, args)} Run 'redis-hotswap{verb} --help' for the options and an example.";
        if (args.Contains("--json"))
        {
            new JsonOutput().Refused([line]); // a script reads one event, with its time, like every other refusal
        }
        else
        {
            Console.Error.WriteLine(line);
        }

        return Runner.Refused;
    }

    /// <summary>
    /// A parse error with every quoted argument masked except option names and a verb-like first word, which are what
    /// an operator misspells; a value (a configuration string, a password given in the wrong place) is never shown.
    /// </summary>
    internal static string Unechoed(string message, IReadOnlyList<string> args)
    {
        foreach (var arg in args.Distinct().Where(a => a.Length > 0).OrderByDescending(a => a.Length))
        {
            var shown = (arg.StartsWith("--", StringComparison.Ordinal) && !arg.Contains('=', StringComparison.Ordinal) && arg.Length <= 40)
                || (arg == args[0] && System.Text.RegularExpressions.Regex.IsMatch(arg, "^[a-z][a-z-]{0,30}$"));
            if (!shown)
            {
                message = message.Replace($"'{arg}'", "(a value, not shown)", StringComparison.Ordinal);
            }
        }

        return message.Replace(Environment.NewLine, " ", StringComparison.Ordinal);
    }

    private static async Task Migrate(VerbRun run)
    {
        if (run.Parse.GetValue(DryRun))
        {
            await run.Coordinator.CheckAsync();
            run.Output.Plan(Plan.Steps(run.Options));
            return;
        }

        run.Show(await run.Coordinator.MigrateAsync(run.Cancellation));
    }

    private static async Task Status(VerbRun run)
    {
        var status = await run.Coordinator.StatusAsync();
        if (!run.Parse.GetValue(Watch))
        {
            run.Show(status);
            return;
        }

        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(2));
        await run.Output.WatchAsync(status, async () => await run.Coordinator.StatusAsync(), timer, run.Cancellation);
    }

    private static Command Verb(string name, string description, string example, Setting[] own, Func<VerbRun, Task> run, Option[]? flags = null)
    {
        var settings = Common.Concat(own).ToArray();
        var command = new Command(name, description);
        Examples[name] = example;
        foreach (var option in settings.Select(s => s.Option).Concat(flags ?? []).Append(Json))
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) =>
        {
            var options = new CoordinatorOptions();
            foreach (var setting in settings)
            {
                setting.Apply(parse, options);
            }

            return Runner.RunAsync(name, options, parse, parse.GetValue(Json), run, ct);
        });
        return command;
    }

    /// <summary>A verb's help, then its example.</summary>
    private sealed class HelpWithExample(HelpAction help, IReadOnlyDictionary<string, string> examples) : SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            var result = help.Invoke(parseResult);
            if (examples.TryGetValue(parseResult.CommandResult.Command.Name, out var example))
            {
                parseResult.InvocationConfiguration.Output.WriteLine($"Example:{Environment.NewLine}  redis-hotswap {example}{Environment.NewLine}");
            }

            return result;
        }
    }
}
