using System.Collections.Concurrent;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Protocol;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>Every setting a migration changes is put back exactly as it was when the migration ends.</summary>
public sealed class SettingsTests
{
    // What a migration is meant to leave changed: the roles, and on the side a finish leaves behind, the fence that
    // makes it refuse writes for good (documented). Aliases of these are listed too.
    private static readonly string[] Roles = ["replicaof", "slaveof"];
    private static readonly string[] FinishedSideFence = ["min-replicas-to-write", "min-slaves-to-write", "min-replicas-max-lag", "min-slaves-max-lag"];

    [Fact]
    public async Task HandoffRollbackMigrateFinish_PutsBackEverySetting_ButTheFinishedSidesFence()
    {
        // An operator who half-prepared TARGET by hand (the manual procedure's writable replica) and tuned SOURCE.
        await using var migration = await Migration.StartAsync(targetSettings: ["replica-read-only no"], sourceSettings: ["min-replicas-max-lag 7"]);
        var before = (await SettingsAsync(migration.SourceAdmin), await SettingsAsync(migration.TargetAdmin));

        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, "settings", o => (o.Cutover, o.ExpectedInstances) = (CutoverMode.Handoff, 0)))
        {
            await coordinator.MigrateAsync();
            await coordinator.RollbackAsync();
            await coordinator.MigrateAsync();
            await coordinator.FinishAsync();
        }

        AssertSame(before.Item1, await SettingsAsync(migration.SourceAdmin), [.. Roles, .. FinishedSideFence]);
        AssertSame(before.Item2, await SettingsAsync(migration.TargetAdmin), Roles);
        Assert.Equal("no", await ConfigAsync(migration.TargetAdmin, "replica-read-only"));
    }

    [Fact]
    public async Task WindowThenAbort_PutsBackEverySetting_AndNeverRecordsASecret()
    {
        const string ownSecret = "targets-own-masterauth-7f3a";
        await using var migration = await Migration.StartAsync(targetSettings: ["replica-read-only no", $"masterauth {ownSecret}"]);
        var before = (await SettingsAsync(migration.SourceAdmin), await SettingsAsync(migration.TargetAdmin));
        var audit = new ConcurrentQueue<string>();

        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, "settings", o => (o.Cutover, o.ExpectedInstances, o.Audit) = (CutoverMode.Window, 0, audit.Enqueue)))
        {
            await coordinator.ReplicateAsync();
            Assert.Equal("yes", await ConfigAsync(migration.TargetAdmin, "replica-read-only")); // no early writer on TARGET before the window
            await coordinator.CutoverAsync();
            var state = await migration.SourceDb.HashGetAllAsync(MigrationKeys.State("settings"));
            Assert.DoesNotContain(state, e => e.Value.ToString().Contains(ownSecret, StringComparison.Ordinal) || e.Value.ToString().Contains(migration.Source.Password, StringComparison.Ordinal));
            Assert.Contains(state, e => e.Name == "original:target:replica-read-only" && e.Value == "no");
            await coordinator.AbortAsync();
        }

        // The secret TARGET had of its own was replaced to replicate SOURCE and is kept nowhere: cleared, and said so.
        AssertSame(before.Item1, await SettingsAsync(migration.SourceAdmin), []);
        AssertSame(before.Item2, await SettingsAsync(migration.TargetAdmin), [.. Roles, "masterauth"]);
        Assert.Equal(string.Empty, await ConfigAsync(migration.TargetAdmin, "masterauth"));
        Assert.Contains(audit, l => l.Contains("TARGET: CONFIG SET masterauth '' (", StringComparison.Ordinal) && l.Contains("set it again", StringComparison.Ordinal));
        Assert.DoesNotContain(audit, l => l.Contains(ownSecret, StringComparison.Ordinal));
    }

    private static async Task<Dictionary<string, string>> SettingsAsync(ConnectionMultiplexer admin) =>
        (await admin.GetServers()[0].ConfigGetAsync("*")).ToDictionary(p => p.Key, p => p.Value);

    private static async Task<string> ConfigAsync(ConnectionMultiplexer admin, string key) =>
        (await admin.GetServers()[0].ConfigGetAsync(key)).Single().Value;

    private static void AssertSame(Dictionary<string, string> before, Dictionary<string, string> after, string[] allowed)
    {
        var changed = before.Keys.Union(after.Keys)
            .Where(k => !allowed.Contains(k) && before.GetValueOrDefault(k) != after.GetValueOrDefault(k))
            .Select(k => $"{k}: '{before.GetValueOrDefault(k)}' -> '{after.GetValueOrDefault(k)}'")
            .ToArray();
        Assert.True(changed.Length == 0, "changed: " + string.Join("; ", changed));
    }
}
