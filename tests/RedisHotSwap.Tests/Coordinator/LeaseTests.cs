using RedisHotSwap.Coordinator;
using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;
using RedisHotSwap.Protocol;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>One coordinator at a time: the lease, and the revision every state write checks.</summary>
public sealed class LeaseTests
{
    [Fact]
    public async Task SecondCoordinator_WhileMigrateHoldsTheLease_ExitsTwoNamingTheHolderAndChangesNothing()
    {
        const string id = "held";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        using var first = CoordinatorCli.Start(migration, id, "migrate", "--expect-instances", "2", "--instances-timeout", "00:05:00");
        try
        {
            await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Arming); // waits there: one instance of two
            await Eventually.TrueAsync(() => migration.SourceDb.KeyExistsAsync(MigrationKeys.Directive(id)), "the directive to arm");
            await migration.ReplicatedAsync();
            var before = await ServerSnapshot.TakeAsync(migration, id);

            foreach (var verb in new[] { "abort", "migrate", "promote", "finish" })
            {
                var (exit, output) = await CoordinatorCli.RunAsync(migration, id, verb);

                Assert.True(exit == 2, output);
                var line = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                Assert.Contains($"'migrate' on host {Environment.MachineName}, pid {first.Id}, since ", line);
                Assert.Contains("run this command again", line);
            }

            Assert.Equal(before, await ServerSnapshot.TakeAsync(migration, id));
            Assert.False(first.HasExited);
            var (statusExit, _) = await CoordinatorCli.RunAsync(migration, id, "status"); // read-only: no lease needed
            Assert.Equal(0, statusExit);
        }
        finally
        {
            first.Kill(entireProcessTree: true);
            await first.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task Migrate_AfterTheHolderWasKilled_TakesTheLeaseOnceItExpiresAndFinishes()
    {
        const string id = "killed-holder";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        using (var first = CoordinatorCli.Start(migration, id, "migrate", "--expect-instances", "2", "--instances-timeout", "00:05:00"))
        {
            await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Arming);
            first.Kill(entireProcessTree: true); // SIGKILL: no release
            await first.WaitForExitAsync();
        }

        Assert.True(await migration.SourceDb.KeyExistsAsync(MigrationKeys.Lease(id)));

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1");

        Assert.True(exit == 0, output);
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        Assert.False(await migration.TargetDb.KeyExistsAsync(MigrationKeys.Lease(id))); // released on exit, on the new primary
    }

    [Fact]
    public async Task Lease_WhenAnotherCoordinatorTakesIt_StopsBeforeTheNextChange()
    {
        await using var migration = await Migration.StartAsync();
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        var lease = await Lease.AcquireAsync(source, target, "stolen", "replicate", TimeProvider.System);
        source.Guard = lease.ThrowIfLost;
        lease.ThrowIfLost();

        var thief = new LeaseHolder("other-token", "elsewhere", 4242, "abort", DateTimeOffset.UtcNow).ToJson();
        await migration.SourceDb.StringSetAsync(MigrationKeys.Lease("stolen"), thief, TimeSpan.FromMinutes(1));
        await Eventually.TrueAsync(() => Task.FromResult(Throws(lease.ThrowIfLost)), "the renewal to find the lease taken");

        var halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => source.ConfigSetAuditedAsync("replica-read-only", "no", "a change after the lease was lost"));
        Assert.Contains("lost the lease", halted.Problem);
        Assert.Contains("'abort' on host elsewhere, pid 4242", halted.Problem);
        Assert.Equal("yes", (await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigGetAsync("replica-read-only"))[0].Value);
        await lease.DisposeAsync();
        Assert.Equal(thief, await migration.SourceDb.StringGetAsync(MigrationKeys.Lease("stolen"))); // its release leaves the other's lease alone
    }

    [Fact]
    public async Task Lease_WhenSourceReplicatesTarget_IsTakenOnTarget()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        // Named the other way round: the side called SOURCE is now the replica, as after a handoff.
        await using var replica = await RedisNode.ConnectAsync("SOURCE", migration.Target.ConfigurationString, CancellationToken.None);
        await using var primary = await RedisNode.ConnectAsync("TARGET", migration.Source.ConfigurationString, CancellationToken.None);

        await using (var lease = await Lease.AcquireAsync(replica, primary, "after-handoff", "rollback", TimeProvider.System))
        {
            Assert.Equal("TARGET", lease.HeldOn);
            Assert.True(await migration.SourceDb.KeyExistsAsync(MigrationKeys.Lease("after-handoff")));
        }

        Assert.False(await migration.SourceDb.KeyExistsAsync(MigrationKeys.Lease("after-handoff")));
    }

    [Fact]
    public async Task WriteAsync_WithAStaleRevision_IsRefusedAndOverwritesNothing()
    {
        await using var migration = await Migration.StartAsync();
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        var store = new StateStore(source, target, "race");
        var read = await store.ReadAsync();
        var written = await store.WriteAsync(read.Enter(MigrationPhase.Replicating, DateTimeOffset.UtcNow), source);

        var halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => store.WriteAsync(read.Enter(MigrationPhase.Aborted, DateTimeOffset.UtcNow), source));

        Assert.Contains("read at revision 0, SOURCE now holds 1", halted.Problem);
        var stored = await store.ReadAsync();
        Assert.Equal((MigrationPhase.Replicating, written.Revision), (stored.Phase, stored.Revision));
        var stale = await Assert.ThrowsAsync<MigrationHaltedException>(() => store.WriteAsync(read with { Revision = 5 }, source));
        Assert.Contains("read at revision 5, SOURCE now holds 1", stale.Problem);
    }

    private static bool Throws(Action action)
    {
        try
        {
            action();
            return false;
        }
        catch (MigrationHaltedException)
        {
            return true;
        }
    }
}

/// <summary>What a coordinator may change on both servers: their roles and settings, and the migration's keys (the lease aside).</summary>
internal static class ServerSnapshot
{
    private static readonly string[] Settings = ["min-replicas-to-write", "min-replicas-max-lag", "replica-read-only", "masterauth", "masteruser"];

    public static async Task<string> TakeAsync(Migration migration, string migrationId)
    {
        var lines = new List<string>();
        foreach (var (name, admin) in new[] { ("SOURCE", migration.SourceAdmin), ("TARGET", migration.TargetAdmin) })
        {
            var server = admin.GetServer(admin.GetEndPoints()[0]);
            var replication = (string)(await admin.GetDatabase().ExecuteAsync("INFO", "replication"))!;
            lines.Add($"{name} {replication.Split('\n').First(l => l.StartsWith("role:", StringComparison.Ordinal)).Trim()}");
            lines.AddRange(Settings.Select(s => $"{name} {s}={server.ConfigGet(s).FirstOrDefault().Value}"));
            foreach (var key in server.Keys(pattern: $"{MigrationKeys.Prefix}{migrationId}:*").Where(k => k != MigrationKeys.Lease(migrationId) && !k.ToString().Contains(":instance", StringComparison.Ordinal)).OrderBy(k => k.ToString()))
            {
                var value = await admin.GetDatabase().KeyTypeAsync(key) == RedisType.Hash
                    ? string.Join(",", (await admin.GetDatabase().HashGetAllAsync(key)).Select(e => $"{e.Name}={e.Value}").Order())
                    : (string?)await admin.GetDatabase().StringGetAsync(key);
                lines.Add($"{name} {key}={value}");
            }
        }

        return string.Join('\n', lines);
    }
}
