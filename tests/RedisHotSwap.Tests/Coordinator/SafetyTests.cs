using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class SafetyTests
{
    [Fact]
    public async Task Cutover_WhenSourceFullSyncsDuringTheWindow_StopsAndRefusesToPromote()
    {
        const string id = "loss";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var coordinator = await CoordinatorCli.ObserverAsync(migration, id);
        await coordinator.ReplicateAsync();
        var cutover = coordinator.CutoverAsync(); // waits: the instance never switches

        // A full resync during the window: SOURCE serves one (here to a newcomer; the counter cannot tell whom to).
        await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);
        await using var newcomer = await RedisServerProcess.StartAsync(settings: [$"masterauth {migration.Source.Password}", $"replicaof 127.0.0.1 {migration.Source.Port}"]);

        var halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => cutover.WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.Contains("full-resynced", halted.Problem);
        Assert.Contains("abort", halted.HowToContinue);
        Assert.Contains("full-resynced", (await coordinator.StatusAsync()).Waiting); // recorded for the next run and 'status'
        await Assert.ThrowsAsync<MigrationHaltedException>(() => coordinator.PromoteAsync());
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
    }

    [Fact]
    public async Task MigrateBack_AfterAMigration_LeavesEachNewPrimaryWritableAndEachOldOneFenced()
    {
        await using var migration = await Migration.StartAsync();
        await migration.SourceDb.StringSetAsync("k", "1");
        await using (var forth = await CoordinatorCli.ObserverAsync(migration, "forth", o => (o.ExpectedInstances, o.Cutover) = (0, CutoverMode.Window)))
        {
            await forth.MigrateAsync();
        }

        await using (var back = await CoordinatorCli.ObserverAsync(migration.Back, "back", o => (o.ExpectedInstances, o.Cutover, o.AllowTargetData) = (0, CutoverMode.Window, true)))
        {
            await back.MigrateAsync();
        }

        await migration.SourceDb.StringSetAsync("k", "2"); // SOURCE is the primary again, and takes writes
        var refused = await Assert.ThrowsAsync<StackExchange.Redis.RedisServerException>(() => migration.TargetDb.StringSetAsync("k", "3"));
        Assert.StartsWith("NOREPLICAS", refused.Message);
        Assert.Equal("2", await migration.SourceDb.StringGetAsync("k"));
    }

    /// <summary>
    /// The server a window migration left fenced (<c>min-replicas-to-write</c>, so that it refuses writes) is the TARGET
    /// of the migration back. Its fence has no effect while it replicates; once promoted it would refuse every write of
    /// the instances already on it (NOREPLICAS) until it was lifted. A write at the instant of the promotion shows it.
    /// </summary>
    [Fact]
    public async Task MigrateBack_TheInstantTheFencedServerIsPromoted_ItTakesWrites()
    {
        await using var migration = await Migration.StartAsync();
        await using (var forth = await CoordinatorCli.ObserverAsync(migration, "forth", o => (o.ExpectedInstances, o.Cutover) = (0, CutoverMode.Window)))
        {
            await forth.MigrateAsync();
        }

        Assert.Equal("1", (await migration.SourceAdmin.GetServers()[0].ConfigGetAsync("min-replicas-to-write")).Single().Value);
        string? atPromotion = null;
        await using (var back = await CoordinatorCli.ObserverAsync(migration.Back, "back", o =>
        {
            (o.ExpectedInstances, o.Cutover, o.AllowTargetData) = (0, CutoverMode.Window, true);
            o.Audit = line =>
            {
                if (AuditStep.Normalize(line).StartsWith("TARGET: REPLICAOF NO ONE", StringComparison.Ordinal))
                {
                    // Right after the promotion and before the coordinator's next command, as an instance on TARGET writes.
                    try
                    {
                        migration.SourceDb.StringSet("k", "at promotion");
                        atPromotion = "taken";
                    }
                    catch (StackExchange.Redis.RedisServerException ex)
                    {
                        atPromotion = ex.Message;
                    }
                }
            };
        }))
        {
            await back.MigrateAsync();
        }

        Assert.Equal("taken", atPromotion);
    }

    [Fact]
    public async Task Promote_WhenTargetWasDetachedByAnyoneElse_RefusesAndDirectsNobody()
    {
        const string id = "detached";
        await using var migration = await Migration.StartAsync();
        await using var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o => o.ExpectedInstances = 0);
        await coordinator.ReplicateAsync();
        await coordinator.CutoverAsync();
        await migration.TargetAdmin.GetServer(migration.Target.Endpoint).ExecuteAsync("REPLICAOF", "NO", "ONE"); // not the coordinator

        var halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => coordinator.PromoteAsync());

        Assert.Contains("did not promote it", halted.Problem);
        Assert.False(await migration.TargetDb.KeyExistsAsync(RedisHotSwap.Protocol.MigrationKeys.Directive(id)));
        await migration.SourceDb.StringSetAsync("source-still-writable", "1");
    }

    [Fact]
    public async Task Cutover_WhenAnInstanceNeverMoves_TimesOutNamingItAndCanBeRunAgain()
    {
        const string id = "straggler";
        await using var migration = await Migration.StartAsync();
        await using var moves = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var stays = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o =>
        {
            o.ExpectedInstances = 2;
            o.InstancesTimeout = TimeSpan.FromSeconds(3);
        });
        await coordinator.ReplicateAsync();
        var cutover = coordinator.CutoverAsync();
        await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);
        var next = moves.NextSwitch();
        moves.SetUseTarget(true);
        await next;

        var halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => cutover);

        var straggler = Assert.Single((await coordinator.StatusAsync()).Instances, i => i.Side == RedisSide.Source);
        Assert.Contains(straggler.InstanceId, halted.Problem);
        Assert.Contains("run the same command again", halted.HowToContinue);
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication")); // left as it was

        stays.SetUseTarget(true);
        await coordinator.CutoverAsync();
        Assert.All((await coordinator.StatusAsync()).Instances, i => Assert.Equal(RedisSide.Target, i.Side));
    }

    [Fact]
    public async Task Abort_AfterSomeInstancesSwitched_RefusesThenWithTheOptionMovesThemBackCountsTheirKeysAndDetachesTarget()
    {
        const string id = "abort";
        await using var migration = await Migration.StartAsync();
        await using var moved = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var stayed = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var coordinator = await CoordinatorCli.ObserverAsync(migration, id);
        await coordinator.ReplicateAsync();
        using var stopCutover = new CancellationTokenSource();
        var cutover = coordinator.CutoverAsync(stopCutover.Token);
        await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);

        var switched = moved.NextSwitch();
        moved.SetUseTarget(true);
        await switched;
        var db = moved.Multiplexer.GetDatabase();
        for (var i = 0; i < 10; i++)
        {
            await db.StringSetAsync($"only-on-target:{i}", i);
        }

        await stopCutover.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cutover);
        Assert.Equal(2, await CoordinatorCli.InvokeAsync(migration, id, "abort")); // 10 keys would be discarded
        Assert.Equal(RedisSide.Target, moved.Controller.ActiveSide);
        var back = moved.NextSwitch();

        await using (var aborting = await CoordinatorCli.ObserverAsync(migration, id, o => o.DiscardTargetWrites = true))
        {
            Assert.Equal(10, await aborting.AbortAsync());
        }

        var returned = await back;
        Assert.Equal(RedisSide.Source, returned.To);
        Assert.Contains("aborted", returned.Reason);
        Assert.Equal(RedisSide.Source, moved.Controller.ActiveSide); // although its configuration still says UseTarget
        Assert.Equal(RedisSide.Source, stayed.Controller.ActiveSide);
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal(MigrationPhase.Aborted, (await coordinator.StatusAsync()).Phase);
        Assert.Equal(10, await CountOnlyOnTargetAsync(migration));
    }

    [Fact]
    public async Task Abort_WithKeysOnlyOnTarget_RefusesInOneLineThenWithTheOptionPrintsTheCount()
    {
        const string id = "abort-count";
        await using var migration = await Migration.StartAsync();
        await using var coordinator = await CoordinatorCli.ObserverAsync(migration, id);
        await coordinator.ReplicateAsync();
        await migration.TargetAdmin.GetServer(migration.Target.Endpoint).ConfigSetAsync("replica-read-only", "no");
        await using (var writer = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, useTarget: true, migrationId: "bystander")))
        {
            await writer.Multiplexer.GetDatabase().StringSetAsync("written-on-target", "1");
        }

        var (refusedExit, refused) = await CoordinatorCli.RunAsync(migration, id, "abort");
        Assert.True(refusedExit == 2, refused);
        Assert.Contains("Abort would discard 1 keys changed on TARGET during the window (1 created there, 0 that SOURCE also holds, updated or deleted). Nothing changed.",
            Assert.Single(refused.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "abort", "--discard-target-writes");

        Assert.Equal(0, exit);
        Assert.Contains("discarded 1 keys changed on TARGET during the window", string.Join(' ', output.Split('\n', StringSplitOptions.TrimEntries)));
    }

    private static async Task<long> CountOnlyOnTargetAsync(Migration migration)
    {
        long count = 0;
        for (var i = 0; i < 10; i++)
        {
            if (await migration.TargetDb.KeyExistsAsync($"only-on-target:{i}") && !await migration.SourceDb.KeyExistsAsync($"only-on-target:{i}"))
            {
                count++;
            }
        }

        return count;
    }
}
