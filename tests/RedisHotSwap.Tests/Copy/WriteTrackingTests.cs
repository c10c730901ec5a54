using RedisHotSwap.Connection;
using RedisHotSwap.Copy;
using RedisHotSwap.Protocol;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Copy;

/// <summary>Which keys the generated members mark, command by command, once a copy migration tracks the route.</summary>
public sealed class WriteTrackingTests
{
    [Fact]
    public async Task Commands_OnATrackedRoute_MarkTheKeysTheyWriteAndNothingTheyRead()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: null));
        var route = ((HotSwapConnectionMultiplexer)app.Multiplexer).ActiveRoute;
        var tracker = new WriteTracker();
        route.Tracker = tracker;
        try
        {
            var db = app.Multiplexer.GetDatabase();
            await db.StringSetAsync("written:set", "v");
            db.HashSet("written:hash-sync", "f", "v");
            await db.StringSetAsync([new("written:m1", "1"), new("written:m2", "2")]);
            await db.ListRightPushAsync("written:list", "x", flags: CommandFlags.FireAndForget);
            await db.StringGetAsync("read:get");
            await db.KeyExistsAsync("read:exists");
            await db.ScriptEvaluateAsync("return redis.call('SET', KEYS[1], 'v')", ["written:script"]);
            var transaction = db.CreateTransaction();
            _ = transaction.StringIncrementAsync("written:transaction");
            await transaction.ExecuteAsync();
            await app.Multiplexer.GetDatabase(1).SetAddAsync("written:db1", "m");
            Assert.Equal(0, await UnknownAsync(migration, tracker));

            await db.ExecuteAsync("SET", "written:raw", "v"); // a raw command: its keys are not known
            Assert.Equal(1, await UnknownAsync(migration, tracker));

            var marked = (await migration.TargetDb.SetMembersAsync(MigrationKeys.Dirty("m", 0))).Select(v => (string)v!).Order().ToArray();
            Assert.Equal(["written:hash-sync", "written:list", "written:m1", "written:m2", "written:script", "written:set", "written:transaction"], marked);
            Assert.Equal(["written:db1"], (await migration.TargetDb.SetMembersAsync(MigrationKeys.Dirty("m", 1))).Select(v => (string)v!).ToArray());
        }
        finally
        {
            route.Tracker = null;
        }
    }

    // Ships the marks to TARGET (as the participant does) and reads the count of writes with unknown keys.
    private static async Task<long> UnknownAsync(Migration migration, WriteTracker tracker)
    {
        await tracker.FlushAsync(migration.TargetDb, "m");
        return (long?)await migration.TargetDb.StringGetAsync(MigrationKeys.DirtyUnknown("m")) ?? 0;
    }
}
