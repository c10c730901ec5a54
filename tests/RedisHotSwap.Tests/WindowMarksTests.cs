using RedisHotSwap.Connection;
using RedisHotSwap.Protocol;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

/// <summary>
/// The writable window's marks (what <c>abort</c> counts): a write that runs on TARGET is marked there however it got
/// there, and an instance that may have left marks unshipped stays named on TARGET.
/// </summary>
public sealed class WindowMarksTests
{
    // A unit that fails unsent on SOURCE (its connection is down, the command waits in the client's backlog) after the
    // switch to TARGET is sent again there: it runs on TARGET, so it must be marked there, as an update of a key SOURCE
    // holds (which only a mark tells abort about).
    [Theory]
    [InlineData("command")]
    [InlineData("blocking command")]
    [InlineData("batch")]
    [InlineData("transaction")]
    public async Task Replay_UnsentOnSourceAndSentAgainOnTheWritableTarget_IsMarkedThere(string unit)
    {
        const string id = "marks";
        const string key = "updated-in-the-window";
        await using var migration = await Migration.StartAsync(replicate: true);
        await migration.SourceDb.StringSetAsync(key, "before");
        await migration.ReplicatedAsync();
        var settings = HotSwapApp.Settings(migration, migrationId: id);
        settings["RedisHotSwap:Source"] += ",asyncTimeout=3000,syncTimeout=3000"; // a command in the backlog fails unsent after 3 s
        await using var app = HotSwapApp.Create(migration, settings: settings);
        var db = app.Multiplexer.GetDatabase();
        await db.PingAsync();

        // SOURCE drops the instance and does not let it back in: its commands wait in the client's backlog.
        var source = migration.SourceAdmin.GetServer(migration.Source.Endpoint);
        await source.ExecuteAsync("CONFIG", "SET", "requirepass", $"another-{Guid.NewGuid():N}");
        try
        {
            await source.ExecuteAsync("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes");
            var hotswap = (HotSwapConnectionMultiplexer)app.Multiplexer;
            await Eventually.TrueAsync(() => Task.FromResult(hotswap.ActiveRoute.Side == RedisSide.Source && hotswap.ActiveRoute.MayRecover), "the instance to see SOURCE's connection fail");

            Task written = unit switch
            {
                "command" => db.StringSetAsync(key, "during"),
                "blocking command" => Task.Run(() => db.StringSet(key, "during")),
                "batch" => Batch(db, key),
                _ => Transaction(db, key),
            };
            var switching = app.Controller.SwitchToAsync(RedisSide.Target);
            await written;
            await switching;
        }
        finally
        {
            await source.ExecuteAsync("CONFIG", "SET", "requirepass", migration.Source.Password);
        }

        Assert.Equal("during", (string?)await migration.TargetDb.StringGetAsync(key));
        await Eventually.TrueAsync(() => migration.TargetDb.SetContainsAsync(MigrationKeys.Dirty(id, 0), key), $"the {unit} sent again on TARGET to be marked there");
    }

    // Killed on TARGET, an instance takes its last marks with it; it stays named on TARGET, so the loss is seen. One that
    // leaves TARGET cleanly ships its marks and removes its name.
    [Fact]
    public async Task WindowWriters_AnInstanceKilledOnTargetStaysNamed_OneThatLeavesIsNot()
    {
        const string id = "killed";
        await using var migration = await Migration.StartAsync(replicate: true);
        var writers = MigrationKeys.WindowWriters(id);
        await using var killed = await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, useTarget: true, migrationId: id), load: "write");
        await Eventually.TrueAsync(async () => await migration.TargetDb.SetLengthAsync(writers) == 1, "the instance on TARGET to name itself there");
        var named = (string?)await migration.TargetDb.SetRandomMemberAsync(writers);
        killed.Kill();

        await using (var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, useTarget: true, migrationId: id)))
        {
            var db = app.Multiplexer.GetDatabase();
            await db.StringSetAsync("written-on-target", "x");
            Assert.Equal(2, await migration.TargetDb.SetLengthAsync(writers));
            await app.Controller.SwitchToAsync(RedisSide.Source);
            Assert.True(await migration.TargetDb.SetContainsAsync(MigrationKeys.Dirty(id, 0), "written-on-target"));
        }

        Assert.Equal([named], (await migration.TargetDb.SetMembersAsync(writers)).Select(m => (string?)m));
    }

    private static Task Batch(IDatabase db, string key)
    {
        var batch = db.CreateBatch();
        var set = batch.StringSetAsync(key, "during");
        batch.Execute();
        return set;
    }

    private static async Task Transaction(IDatabase db, string key)
    {
        var transaction = db.CreateTransaction();
        _ = transaction.StringSetAsync(key, "during");
        Assert.True(await transaction.ExecuteAsync());
    }
}
