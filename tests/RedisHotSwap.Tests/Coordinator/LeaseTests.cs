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

    [Fact]
    public async Task HoldThroughAsync_WhenTheExtensionIsRefused_LosesTheLeaseButStillUndoesTheFence()
    {
        await using var migration = await Migration.StartAsync(replicate: true); // TARGET a writable replica: it must not take the renewal
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        await using var lease = await Lease.AcquireAsync(source, target, "unextended", "migrate", TimeProvider.System);
        source.Guard = target.Guard = lease.ThrowIfLost;
        source.UndoGuard = target.UndoGuard = lease.ThrowIfNotOursToUndo; // the key it last confirmed still lives: it is still this one's
        await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigSetAsync("min-replicas-to-write", "2"); // SOURCE refuses the extension (NOREPLICAS)

        var halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => lease.HoldThroughAsync(TimeSpan.FromSeconds(2)));

        Assert.Contains("could not be extended over the write pause", halted.Problem);
        Assert.Equal("SOURCE", lease.HeldOn); // not moved to a replica
        await Assert.ThrowsAsync<MigrationHaltedException>(() => target.ExecuteAuditedAsync("a change after the lease was lost", "REPLICAOF", "NO", "ONE"));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
        var fence = new Fence(source);
        await fence.UnpauseQuietlyAsync();
        await fence.RestoreAsync(new FenceSettings("0", "10")); // an undo goes through all the same
        Assert.Equal("0", (await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigGetAsync("min-replicas-to-write"))[0].Value);
    }

    [Fact]
    public async Task Undo_AfterAnotherCoordinatorTookTheLease_IsNotMadeAndSaysWhatItLeft()
    {
        await using var migration = await Migration.StartAsync(replicate: true);
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        await using var lease = await Lease.AcquireAsync(source, target, "taken-over", "migrate", TimeProvider.System);
        source.Guard = lease.ThrowIfLost;
        source.UndoGuard = lease.ThrowIfNotOursToUndo;
        var audit = new List<string>();
        source.Audit = audit.Add;

        // Another coordinator took the lease over and armed SOURCE's fence its own way.
        var other = new LeaseHolder("other-token", "elsewhere", 4242, "migrate", DateTimeOffset.UtcNow).ToJson();
        await migration.SourceDb.StringSetAsync(MigrationKeys.Lease("taken-over"), other, TimeSpan.FromMinutes(1));
        var server = migration.SourceAdmin.GetServer(migration.Source.Endpoint);
        await server.ConfigSetAsync("min-replicas-to-write", "1");
        await Eventually.TrueAsync(() => Task.FromResult(Throws(lease.ThrowIfLost)), "the renewal to find the lease taken");

        var fence = new Fence(source);
        var restore = await Assert.ThrowsAsync<UndoRefusedException>(() => fence.RestoreAsync(new FenceSettings("0", "10")));
        var unpause = await Assert.ThrowsAsync<UndoRefusedException>(fence.UnpauseQuietlyAsync);

        Assert.Equal("1", (await server.ConfigGetAsync("min-replicas-to-write"))[0].Value);
        Assert.Empty(audit); // nothing was sent
        Assert.Contains("lost the lease", restore.Problem);
        Assert.Contains("It left SOURCE's min-replicas-to-write as it was (not put back to '0')", restore.StateLeft);
        Assert.Contains("It left SOURCE's write pause as it was", unpause.StateLeft);
        Assert.Equal("SOURCE's min-replicas-to-write as it was (not put back to '0')", restore.Left); // for a halt that lists every undo not made
    }

    // The window cutover's fence: A stalls behind its pause past its lease; B takes over and arms and pauses SOURCE again.
    [Fact]
    public async Task Promote_WhoseLeaseWasTakenOverBehindTheFence_LeavesTheNewHoldersFenceAndPause()
    {
        const string id = "window-overtaken";
        await using var migration = await Migration.StartAsync();
        var source = migration.SourceAdmin.GetServer(migration.Source.Endpoint);
        var clock = new StallingTimeProvider();
        var overtaken = 0;
        MigrationHaltedException halted;
        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o =>
        {
            (o.ExpectedInstances, o.Cutover) = (0, CutoverMode.Window);
            o.Audit = line =>
            {
                if (line.Contains("SOURCE: CLIENT PAUSE", StringComparison.Ordinal) && Interlocked.Increment(ref overtaken) == 1)
                {
                    Takeover.BehindTheFence(migration, id, clock, fence: "1"); // B's fence, armed as A's was
                }
            };
        }, clock))
        {
            halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => coordinator.MigrateAsync());
        }

        await using var probe = await PauseProbe.SendAsync(migration.Source);
        try
        {
            Assert.Equal(1, overtaken);
            Assert.Equal("1", (await source.ConfigGetAsync("min-replicas-to-write"))[0].Value); // B's fence stands
            await probe.HeldAsync(source); // and its pause
            Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
            Assert.Contains("lost the lease", halted.Problem);
            Assert.Contains("It left SOURCE's write pause as it was", halted.StateLeft);
        }
        finally
        {
            await source.ExecuteAsync("CLIENT", "UNPAUSE");
        }

        await probe.Published;
    }

    [Fact]
    public async Task Renewal_AfterTheKeyExpired_CountsTheLeaseLostAndNeverTakesItAgain()
    {
        await using var migration = await Migration.StartAsync();
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        await using var lease = await Lease.AcquireAsync(source, target, "expired", "migrate", TimeProvider.System);

        await migration.SourceDb.KeyDeleteAsync(MigrationKeys.Lease("expired")); // as its expiry would, during a stall

        await Eventually.TrueAsync(() => Task.FromResult(Throws(lease.ThrowIfLost)), "the renewal to find the lease gone");
        var halted = Assert.Throws<MigrationHaltedException>(lease.ThrowIfLost);
        Assert.Contains("expired before it could be renewed", halted.Problem);
        Assert.False(await migration.SourceDb.KeyExistsAsync(MigrationKeys.Lease("expired")));
        Assert.False(await migration.TargetDb.KeyExistsAsync(MigrationKeys.Lease("expired")));
    }

    [Fact]
    public async Task WriteAsync_AfterAnotherCoordinatorTookTheLease_IsRefusedInTheSameTransaction()
    {
        await using var migration = await Migration.StartAsync();
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        await using var lease = await Lease.AcquireAsync(source, target, "fenced", "migrate", TimeProvider.System);
        var store = new StateStore(source, target, "fenced") { Fencing = () => lease.Fencing };
        var read = await store.ReadAsync();
        var written = await store.WriteAsync(read.Enter(MigrationPhase.Replicating, DateTimeOffset.UtcNow), source);

        var thief = new LeaseHolder("other-token", "elsewhere", 4242, "abort", DateTimeOffset.UtcNow).ToJson();
        await migration.SourceDb.StringSetAsync(MigrationKeys.Lease("fenced"), thief, TimeSpan.FromMinutes(1));
        var halted = await Assert.ThrowsAsync<MigrationHaltedException>(() => store.WriteAsync(written.Enter(MigrationPhase.Aborted, DateTimeOffset.UtcNow), source));

        Assert.Contains("lost the lease", halted.Problem);
        var stored = await store.ReadAsync();
        Assert.Equal((MigrationPhase.Replicating, written.Revision), (stored.Phase, stored.Revision));
    }

    [Fact]
    public async Task WriteAsync_MeetingTheLeasesRenewal_IsNotTakenForAnotherCoordinator()
    {
        await using var migration = await Migration.StartAsync();
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        await using var lease = await Lease.AcquireAsync(source, target, "renewed", "migrate", TimeProvider.System);
        var store = new StateStore(source, target, "renewed") { Fencing = () => lease.Fencing };

        // A renewal gives the lease key a new time-to-live, which a transaction watching it sees as a change: here a
        // renewal every millisecond or so (a real one comes every few seconds), beside a hundred state writes.
        using var stop = new CancellationTokenSource();
        var renewals = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                await migration.SourceDb.KeyExpireAsync(MigrationKeys.Lease("renewed"), TimeSpan.FromMinutes(1));
                await Task.Delay(1);
            }
        });
        var state = await store.ReadAsync();
        try
        {
            for (var i = 0; i < 100; i++)
            {
                state = await store.WriteAsync(state.Enter(i % 2 == 0 ? MigrationPhase.Replicating : MigrationPhase.Arming, DateTimeOffset.UtcNow), source);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await renewals;
        }

        Assert.Equal(100, (await store.ReadAsync()).Revision);
    }

    [Fact]
    public async Task Acquire_WhenAKilledHolderExtendedItOverAPause_WaitsOutWhatIsLeftAndSaysSo()
    {
        await using var migration = await Migration.StartAsync();
        await using var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None);
        await using var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None);
        var dead = await DeadProcessIdAsync();
        var killed = new LeaseHolder("killed-token", Environment.MachineName, dead, "promote", DateTimeOffset.UtcNow).ToJson();
        await migration.SourceDb.StringSetAsync(MigrationKeys.Lease("paused"), killed, TimeSpan.FromSeconds(7)); // over 5 s: extended over a pause

        var tooLong = await Assert.ThrowsAsync<PreflightRefusedException>(() => Lease.AcquireAsync(source, target, "paused", "migrate", TimeProvider.System, maxWait: TimeSpan.FromSeconds(3)));
        Assert.Contains($"pid {dead}", string.Join(' ', tooLong.Problems));

        var said = new List<string>();
        await using (var lease = await Lease.AcquireAsync(source, target, "paused", "migrate", TimeProvider.System, maxWait: TimeSpan.FromSeconds(70), notice: line =>
        {
            said.Add(line);
            return Task.CompletedTask;
        }))
        {
            Assert.Contains(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), (string?)await migration.SourceDb.StringGetAsync(MigrationKeys.Lease("paused")));
        }

        Assert.Contains($"pid {dead}", Assert.Single(said));
        Assert.Contains("waiting", said[0]);
    }

    [Fact]
    public async Task Abort_AfterAHandoffStoppedBehindItsSeal_LiftsTheSealAndRuns()
    {
        const string id = "sealed";
        await using var migration = await Migration.StartAsync(replicate: true);
        await SealAsHandoffLeftItAsync(migration, id, recorded: true);

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "abort");

        Assert.True(exit == 0, output);
        Assert.Equal("0", (await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigGetAsync("min-replicas-to-write"))[0].Value);
        Assert.True(await migration.SourceDb.StringSetAsync("after-abort", "1")); // SOURCE takes writes again
    }

    [Fact]
    public async Task Acquire_OnASealedSourceWithNothingRecorded_RefusesInOneLineAndLeavesTheSeal()
    {
        const string id = "sealed-unknown";
        await using var migration = await Migration.StartAsync(replicate: true);
        await SealAsHandoffLeftItAsync(migration, id, recorded: false);

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "abort");

        Assert.True(exit == 2, output);
        Assert.Contains("Neither SOURCE nor TARGET takes the lease", Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)));
        Assert.Equal("2", (await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigGetAsync("min-replicas-to-write"))[0].Value);
    }

    // SOURCE sealed (one replica more than it has) and TARGET its read-only replica, as a handoff killed after the seal leaves them.
    private static async Task SealAsHandoffLeftItAsync(Migration migration, string id, bool recorded)
    {
        await using (var source = await RedisNode.ConnectAsync("SOURCE", migration.Source.ConfigurationString, CancellationToken.None))
        await using (var target = await RedisNode.ConnectAsync("TARGET", migration.Target.ConfigurationString, CancellationToken.None))
        {
            var store = new StateStore(source, target, id);
            var state = (await store.ReadAsync()).Enter(MigrationPhase.HandingOff, DateTimeOffset.UtcNow) with { Cutover = CutoverMode.Handoff, HandoffTo = RedisSide.Target };
            await store.WriteAsync(recorded ? state with { SourceMinReplicas = "0", FencedMaxLag = "10" } : state, source);
        }

        await migration.ReplicatedAsync();
        await migration.TargetAdmin.GetServer(migration.Target.Endpoint).ConfigSetAsync("replica-read-only", "yes");
        await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigSetAsync("min-replicas-to-write", "2");
        var refused = await Assert.ThrowsAsync<RedisServerException>(() => migration.SourceDb.StringSetAsync("sealed-probe", "1"));
        Assert.StartsWith("NOREPLICAS", refused.Message);
    }

    private static async Task<int> DeadProcessIdAsync()
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("true") { UseShellExecute = false })!;
        await process.WaitForExitAsync();
        return process.Id;
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
