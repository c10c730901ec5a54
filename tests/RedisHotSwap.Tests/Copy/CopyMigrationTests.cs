using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace RedisHotSwap.Tests.Copy;

/// <summary>
/// Copy mode end to end: the coordinator as its own process (<c>redis-hotswap migrate --sync copy</c>), three
/// application instances as processes of their own running the checked load, against servers that refuse replication.
/// </summary>
public sealed class CopyMigrationTests(ITestOutputHelper output)
{
    /// <summary>What a managed service refuses: replication and the admin commands, renamed away as such services do.</summary>
    internal static readonly string[] ManagedService =
    [
        "rename-command REPLICAOF \"\"",
        "rename-command SLAVEOF \"\"",
        "rename-command SYNC \"\"",
        "rename-command PSYNC \"\"",
        "rename-command CONFIG \"\"",
        "rename-command CLIENT \"\"",
    ];

    /// <summary>Where <c>CLIENT</c> is renamed away, writers that are not instances cannot be listed: the operator vouches.</summary>
    private const string UnlistedClients = "--allow-unknown-clients";

    [Fact]
    public async Task Migrate_ReplicationRenamedAwayThreeProcessesUnderLoad_EverythingOnTargetNothingLost()
    {
        const string id = "copy-redis";
        await using var migration = await Migration.StartAsync(sourceSettings: ManagedService, targetSettings: ManagedService);
        await AssertCopiesUnderLoadAsync(migration, id, true, extra: UnlistedClients);
    }

    [Fact]
    public async Task Migrate_ToGarnetThreeProcessesUnderLoad_EverythingOnTargetNothingLost()
    {
        // Garnet refuses REPLICAOF and CLIENT PAUSE, restores only strings and has Lua off: the copy goes type by type.
        const string id = "copy-garnet";
        await using var migration = await Migration.StartAsync(sourceSettings: ManagedService, startTarget: () => RedisServerProcess.StartGarnetAsync());
        await AssertCopiesUnderLoadAsync(migration, id, false, extra: UnlistedClients); // Garnet 2.2.8 has no streams (XADD is unknown)
    }

    [Fact]
    public async Task Migrate_IntoThreeNodeClusterThreeProcessesUnderLoad_EverythingOnTargetNothingLost()
    {
        // The way out when a data set outgrows one server: every key goes to its slot's primary, and the instances
        // switch to the cluster (their Target lists its nodes). A cluster has database 0 only, so SOURCE uses no other.
        const string id = "copy-cluster";
        await using var migration = await Migration.StartToClusterAsync();
        await AssertCopiesUnderLoadAsync(migration, id, secondDatabase: false);
        foreach (var node in migration.TargetCluster!.Nodes)
        {
            Assert.True(await migration.TargetAdmin.GetServer(node.Endpoint).DatabaseSizeAsync() > 1_000, $"primary {node.Endpoint} holds its share of the keys");
        }
    }

    [Fact]
    public async Task Migrate_IntoClusterWhileSourceUsesDatabaseOne_RefusedInOneLineAndNothingChanged()
    {
        const string id = "copy-cluster-db1";
        await using var migration = await Migration.StartToClusterAsync();
        await migration.SourceDb.StringSetAsync("in-db0", "zero");
        await migration.SourceAdmin.GetDatabase(1).StringSetAsync("in-db1", "one");
        var configuration = await ConfigurationAsync(migration);

        var (exit, printed) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--sync", "copy");
        var lines = printed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        output.WriteLine(printed);
        Assert.True(exit == 2, printed);
        var line = Assert.Single(lines);
        Assert.Contains("SOURCE holds keys in database 1 (1 keys), and a Redis Cluster (TARGET) has only database 0: move those keys into database 0", line);

        Assert.Equal("zero", await migration.SourceDb.StringGetAsync("in-db0"));
        Assert.Equal("one", await migration.SourceAdmin.GetDatabase(1).StringGetAsync("in-db1"));
        Assert.Equal(1, await migration.SourceAdmin.GetServer(migration.Source.Endpoint).DatabaseSizeAsync(0));
        Assert.Equal(configuration, await ConfigurationAsync(migration));
        foreach (var node in migration.TargetCluster!.Nodes)
        {
            Assert.Equal(0, await migration.TargetAdmin.GetServer(node.Endpoint).DatabaseSizeAsync()); // no key, not even the lease or a state
        }
    }

    // A key over --big-key-bytes is never dumped whole: it is read in chunks with its type's commands into a temporary
    // key and renamed into place, with its time to live; nothing temporary is left behind.
    [Fact]
    public async Task Migrate_KeysOverTheBigKeyThreshold_CopiedInChunksWithTheirValuesAndTtls()
    {
        const string id = "copy-big";
        await using var migration = await Migration.StartAsync();
        var db = migration.SourceDb;
        const int n = 3_000;
        await db.StringSetAsync("big:string", new string('x', 200_000), TimeSpan.FromMinutes(10));
        await db.HashSetAsync("big:hash", [.. Enumerable.Range(0, n).Select(i => new HashEntry($"field-{i}", $"value-{i}"))]);
        await db.KeyExpireAsync("big:hash", TimeSpan.FromMinutes(5));
        await db.SetAddAsync("big:set", [.. Enumerable.Range(0, n).Select(i => (RedisValue)$"member-{i}")]);
        await db.SortedSetAddAsync("big:zset", [.. Enumerable.Range(0, n).Select(i => new SortedSetEntry($"member-{i}", i))]);
        await db.ListRightPushAsync("big:list", [.. Enumerable.Range(0, n).Select(i => (RedisValue)$"item-{i}")]);
        await Task.WhenAll(Enumerable.Range(0, n).Select(i => db.StreamAddAsync("big:stream", "field", $"entry-{i}")));
        RedisKey[] big = ["big:string", "big:hash", "big:set", "big:zset", "big:list", "big:stream"];
        var small = await TypedData.SeedAsync(db, "small", 300);

        // Through StackExchange.Redis (the other end-to-end tests between two servers go over the copy's own connections).
        var (exit, said) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--sync", "copy", "--expect-instances", "0", "--big-key-bytes", "16384", "--copy-connections", "shared", UnlistedClients);
        output.WriteLine(said);
        Assert.True(exit == 0, said);
        Assert.Contains("through StackExchange.Redis", said, StringComparison.Ordinal);
        Assert.DoesNotContain("over the copy's own connections", said, StringComparison.Ordinal);
        var chunked = System.Text.RegularExpressions.Regex.Matches(said, @"([\d,]+) in chunks").Select(m => long.Parse(m.Groups[1].Value.Replace(",", string.Empty, StringComparison.Ordinal), System.Globalization.CultureInfo.InvariantCulture)).LastOrDefault();
        Assert.True(chunked >= big.Length, $"{chunked} keys copied in chunks, {big.Length} expected at least: {said}");
        Assert.Empty(await TypedData.DifferencesAsync(migration.SourceDb, migration.TargetDb, [.. big, .. small]));
        Assert.Empty(await migration.TargetAdmin.GetServer(migration.Target.Endpoint).KeysAsync(0, "*copying*").ToArrayAsync()); // no temporary key left
    }

    [Fact]
    public async Task Migrate_KilledDuringBackfill_ResumesFromItsCursorAndLosesNothing()
    {
        const string id = "copy-resume";
        await using var migration = await Migration.StartAsync(sourceSettings: ManagedService, targetSettings: ManagedService);
        var seeded = await TypedData.SeedAsync(migration.SourceDb, "seed", 150_000);
        await using var instance = await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency");
        using (var coordinator = CoordinatorCli.Start(migration, id, "migrate", "--sync", "copy", UnlistedClients))
        {
            // Killed once the backfill has kept a cursor and copied a good part of the keys, not all.
            await Eventually.TrueAsync(
                async () => (await migration.TargetDb.HashGetAsync($"__redis-hotswap:{id}:state", "copy-cursor:0")) is { IsNull: false } cursor && cursor != "done"
                    && await migration.TargetAdmin.GetServer(migration.Target.Endpoint).DatabaseSizeAsync() >= 60_000,
                "the backfill to copy 60,000 keys and keep a cursor", TimeSpan.FromSeconds(90));
            coordinator.Kill(entireProcessTree: true);
            await coordinator.WaitForExitAsync();
        }

        var kept = (string?)await migration.TargetDb.HashGetAsync($"__redis-hotswap:{id}:state", "copy-cursor:0");
        Assert.True(await migration.TargetAdmin.GetServer(migration.Target.Endpoint).DatabaseSizeAsync() < await migration.SourceAdmin.GetServer(migration.Source.Endpoint).DatabaseSizeAsync(), "the backfill had not finished");
        var (exit, resumed) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--sync", "copy", UnlistedClients);
        output.WriteLine(resumed);
        Assert.True(exit == 0, resumed);
        Assert.Contains($"database 0 resumed from cursor {kept}", resumed); // from where the killed run was, not from the start

        var run = await instance.StopCheckedAsync();
        Assert.True(run.Errors == 0 && run.Violations == 0, run.Output);
        Assert.Empty(await ConsistencyLoad.MissingOnAsync(migration.TargetDb, run.Expected));
        Assert.Empty(await TypedData.DifferencesAsync(migration.SourceDb, migration.TargetDb, seeded));
    }

    [Fact]
    public async Task Abort_DuringConvergence_LeavesSourceUntouchedAndInstancesOnSource()
    {
        const string id = "copy-abort";
        await using var migration = await Migration.StartAsync();
        var seeded = await TypedData.SeedAsync(migration.SourceDb, "seed", 3_000);
        var before = await TypedData.SnapshotAsync(migration.SourceDb, seeded);
        var configuration = await ConfigurationAsync(migration);
        await using var instance = await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency");
        using (var coordinator = CoordinatorCli.Start(migration, id, "migrate", "--sync", "copy"))
        {
            await CoordinatorCli.WaitForPhaseAsync(migration, id, RedisHotSwap.Coordinator.MigrationPhase.Converging);
            coordinator.Kill(entireProcessTree: true);
            await coordinator.WaitForExitAsync();
        }

        var (exit, aborted) = await CoordinatorCli.RunAsync(migration, id, "abort");
        output.WriteLine(aborted);
        Assert.True(exit == 0, aborted);
        Assert.Contains("Aborted", aborted);

        var run = await instance.StopCheckedAsync();
        Assert.True(run.Errors == 0 && run.Violations == 0, run.Output);
        Assert.Empty(await ConsistencyLoad.MissingOnAsync(migration.SourceDb, run.Expected)); // the instance stayed on SOURCE
        Assert.Equal(before, await TypedData.SnapshotAsync(migration.SourceDb, seeded));
        Assert.Equal(configuration, await ConfigurationAsync(migration));
        var protocol = await migration.SourceAdmin.GetServer(migration.Source.Endpoint).KeysAsync(0, "__redis-hotswap:*").ToArrayAsync();
        Assert.DoesNotContain(protocol, k => !((string)k!).Contains(":instance", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Migrate_WriterThatIsNoInstanceOnSource_RefusedNamingItAndInstancesStayOnSource()
    {
        const string id = "copy-stranger";
        await using var migration = await Migration.StartAsync();
        await TypedData.SeedAsync(migration.SourceDb, "seed", 300);
        await using var instance = await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency");
        await using var stranger = await ConnectionMultiplexer.ConnectAsync($"{migration.Source.ConfigurationString},name=nightly-cron");
        await stranger.GetDatabase().StringSetAsync("cron:last-run", "1");

        var (exit, refused) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--sync", "copy", "--expect-instances", "1");
        output.WriteLine(refused);
        Assert.NotEqual(0, exit);
        Assert.Contains("name 'nightly-cron', last command set", refused);
        Assert.Contains("--allow-unknown-clients", refused);

        var run = await instance.StopCheckedAsync();
        Assert.True(run.Errors == 0 && run.Violations == 0, run.Output);
        Assert.Empty(await ConsistencyLoad.MissingOnAsync(migration.SourceDb, run.Expected)); // nothing switched
    }

    [Fact]
    public async Task Migrate_WriterThatIsNoInstanceAllowedWithKeyspaceNotifications_ProceedsAndCopiesItsWritesAgain()
    {
        const string id = "copy-stranger-allowed";
        await using var migration = await Migration.StartAsync(sourceSettings: ["notify-keyspace-events KA"]);
        var seeded = await TypedData.SeedAsync(migration.SourceDb, "seed", 3_000);
        await using var instance = await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency");
        await using var stranger = await ConnectionMultiplexer.ConnectAsync($"{migration.Source.ConfigurationString},name=nightly-cron");
        var written = Enumerable.Range(0, 50).Select(i => new KeyValuePair<RedisKey, RedisValue>($"stranger:{i}", $"v{i}")).ToArray();
        using var coordinator = CoordinatorCli.Start(migration, id, "migrate", "--sync", "copy", "--expect-instances", "1", "--allow-unknown-clients");
        var (printed, errors) = (coordinator.StandardOutput.ReadToEndAsync(), coordinator.StandardError.ReadToEndAsync());

        // Untracked writes after the backfill copied everything: no instance marks them; the notifications show them.
        await CoordinatorCli.WaitForPhaseAsync(migration, id, RedisHotSwap.Coordinator.MigrationPhase.Converging);
        await stranger.GetDatabase().StringSetAsync(written);
        Assert.Equal("Converging", (string?)await migration.TargetDb.HashGetAsync($"__redis-hotswap:{id}:state", "phase")); // written before the fence

        await coordinator.WaitForExitAsync();
        var migrated = await printed + await errors;
        output.WriteLine(migrated);
        Assert.True(coordinator.ExitCode == 0, migrated);
        Assert.Contains("going on although (--allow-unknown-clients)", migrated);
        Assert.Contains("nightly-cron", migrated);
        Assert.Contains("keyspace notifications: 50 keys changed on SOURCE that no instance marked", migrated); // the stranger's, and no instance write
        foreach (var (key, value) in written)
        {
            Assert.Equal(value, await migration.TargetDb.StringGetAsync(key));
        }

        var run = await instance.StopCheckedAsync();
        Assert.True(run.Errors == 0 && run.Violations == 0, run.Output);
        Assert.Empty(await ConsistencyLoad.MissingOnAsync(migration.TargetDb, run.Expected));
        Assert.Empty(await TypedData.DifferencesAsync(migration.SourceDb, migration.TargetDb, seeded));
    }

    private static async Task<string> ConfigurationAsync(Migration migration) =>
        string.Join("\n", (await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigGetAsync("*")).Select(p => $"{p.Key}={p.Value}").Order(StringComparer.Ordinal));

    /// <summary>
    /// Seeds SOURCE (every common type, TTLs, two databases), runs three checked instances, migrates by copy, and checks:
    /// exit 0 only with every instance on TARGET; zero errors and violations; every acknowledged write and exact counter on
    /// TARGET; every seeded key equal on TARGET (TTL within 1 s); SOURCE's data and the seeded keys unchanged.
    /// </summary>
    internal async Task AssertCopiesUnderLoadAsync(Migration migration, string id, bool streams = true, bool secondDatabase = true, params string[] extra)
    {
        var seeded0 = await TypedData.SeedAsync(migration.SourceDb, "seed", 3_000, streams);
        RedisKey[] seeded1 = secondDatabase ? await TypedData.SeedAsync(migration.SourceAdmin.GetDatabase(1), "seed1", 600, streams) : [];
        var instances = new List<ExternalInstance>();
        var runs = new List<CheckedRun>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                instances.Add(await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id), load: "consistency"));
            }

            var (exit, migrated) = await CoordinatorCli.RunAsync(migration, id, ["migrate", "--sync", "copy", "--expect-instances", "3", .. extra]);
            output.WriteLine(migrated);
            Assert.True(exit == 0, migrated);
            Assert.Contains("every instance on TARGET", migrated);

            // As 'status' shows it: the three instances, each on TARGET.
            await using var observer = await CoordinatorCli.ObserverAsync(migration, id);
            var status = await observer.StatusAsync();
            Assert.True(status.Instances.Count == 3 && status.Instances.All(i => i.Side == RedisSide.Target), string.Join("; ", status.Instances));
        }
        finally
        {
            // Every instance stops, whatever failed; what they saw is checked only once the migration itself passed.
            foreach (var instance in instances)
            {
                runs.Add(await instance.StopCheckedAsync());
                await instance.DisposeAsync();
            }
        }

        foreach (var run in runs)
        {
            output.WriteLine($"{run.Writes} writes, max latency {run.MaxLatencyMs} ms");
            Assert.True(run.Errors == 0, run.Output);
            Assert.True(run.Violations == 0, run.Output);
            Assert.True(run.Writes > 1_000, run.Output);
            Assert.Empty(await ConsistencyLoad.MissingOnAsync(migration.TargetDb, run.Expected));
        }

        Assert.Empty(await TypedData.DifferencesAsync(migration.SourceDb, migration.TargetDb, seeded0));
        if (secondDatabase)
        {
            Assert.Empty(await TypedData.DifferencesAsync(migration.SourceAdmin.GetDatabase(1), migration.TargetAdmin.GetDatabase(1), seeded1));
        }

        // SOURCE was only read: no state, directive or mark of the migration there (the instances' own reports aside).
        var protocol = await migration.SourceAdmin.GetServer(migration.Source.Endpoint).KeysAsync(0, $"__redis-hotswap:*").ToArrayAsync();
        Assert.DoesNotContain(protocol, k => !((string)k!).Contains(":instance", StringComparison.Ordinal));
    }
}
