using RedisHotSwap.Coordinator.Copy;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Copy;

/// <summary>
/// The copy's own connections (<see cref="CopyLanes"/>, <see cref="RespConnection"/>): what they copy is what the copy
/// through StackExchange.Redis copies, they recover from a connection the server closed while idle, and a server that
/// stops answering fails the page within the side's timeout, without the password in the message.
/// </summary>
public sealed class CopyLaneTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Copy_EveryTypeAndSize_TargetHoldsWhatSourceHolds(bool lanes)
    {
        await using var sides = await CopySides.StartAsync();
        var (source, _, from, to) = sides;
        var keys = await SeedAsync(from.Connection);
        await to.Connection.GetDatabase(0).StringSetAsync("never-on-source", "left from before");

        using var copier = sides.Copier(lanes);
        Assert.Equal(lanes, copier.HasLanes);
        foreach (var database in keys.Keys)
        {
            await copier.CopyAsync(database, keys[database]);
        }

        foreach (var (database, names) in keys)
        {
            foreach (var key in names)
            {
                var (sourceDb, targetDb) = (from.Connection.GetDatabase(database), to.Connection.GetDatabase(database));
                if (key == "set")
                {
                    // A set's payload lists its members in hash table order, which a RESTORE does not keep.
                    Assert.Equal((await sourceDb.SetMembersAsync(key)).Order(), (await targetDb.SetMembersAsync(key)).Order());
                }
                else
                {
                    Assert.Equal(await sourceDb.KeyDumpAsync(key), await targetDb.KeyDumpAsync(key));
                }

                var (sourceTtl, targetTtl) = (await sourceDb.KeyTimeToLiveAsync(key), await targetDb.KeyTimeToLiveAsync(key));
                Assert.Equal(sourceTtl.HasValue, targetTtl.HasValue);
                Assert.True(sourceTtl is null || Math.Abs((sourceTtl - targetTtl)!.Value.TotalMilliseconds) < 1000, $"{key}: TTL {sourceTtl} on SOURCE, {targetTtl} on TARGET");
            }
        }

        // A key that was never there is deleted on TARGET, not left as it was.
        Assert.False(await to.Connection.GetDatabase(0).KeyExistsAsync("never-on-source"));
        Assert.Equal(keys.Values.Sum(k => k.Length) - 1, copier.Counters.Copied);
        Assert.Equal(1, copier.Counters.DeletedKeys);
    }

    [Fact]
    public async Task Copy_AfterTheServersClosedTheIdleLanes_CopiesTheNextPage()
    {
        await using var sides = await CopySides.StartAsync();
        var (source, target, _, to) = sides;
        await sides.SeedAsync(200);
        using var copier = sides.Copier();
        await copier.CopyAsync(0, CopySides.Keys(0, 100));

        // As a server's idle timeout would: every connection that last ran one of the lane's commands is closed.
        Assert.Equal(1, await KillLaneConnectionsAsync(source, "dump"));
        Assert.Equal(1, await KillLaneConnectionsAsync(target, "restore"));

        await copier.CopyAsync(0, CopySides.Keys(100, 100));
        Assert.Equal(200, copier.Counters.Copied);
        Assert.Equal(200, await to.Server.DatabaseSizeAsync());
    }

    [Fact]
    public async Task Copy_SourceStopsAnswering_FailsWithinItsTimeoutWithoutThePassword()
    {
        await using var sides = await CopySides.StartAsync(sourceConfiguration: s => s.ConfigurationString + ",asyncTimeout=500");
        var (source, _, from, _) = sides;
        await from.Connection.GetDatabase().StringSetAsync("k", "v");
        using var copier = sides.Copier();
        await copier.CopyAsync(0, ["k"]); // the lane is open

        await using (var pauser = await ConnectionMultiplexer.ConnectAsync(source.ConfigurationString + ",allowAdmin=true"))
        {
            await pauser.GetServer(source.Endpoint).ExecuteAsync("CLIENT", "PAUSE", "3000", "ALL");
            var failure = await Assert.ThrowsAsync<RedisTimeoutException>(() => copier.CopyAsync(0, ["k"]));
            Assert.Contains("SOURCE (127.0.0.1:", failure.Message, StringComparison.Ordinal);
            Assert.Contains("500 ms", failure.Message, StringComparison.Ordinal);
            Assert.DoesNotContain(source.Password, failure.ToString(), StringComparison.Ordinal);
            await pauser.GetServer(source.Endpoint).ExecuteAsync("CLIENT", "UNPAUSE");
        }
    }

    // Over TLS, trusted as an operator's process trusts a private CA (SSL_CERT_FILE): the copy's own connections check
    // the certificate as StackExchange.Redis does, and copy every key.
    [Fact]
    public async Task Migrate_OverTls_CopiesOverItsOwnConnections()
    {
        using var tls = TlsCertificate.Create();
        var (sourcePort, targetPort) = (RedisServerProcess.ReservePort(), RedisServerProcess.ReservePort());
        await using var source = await RedisServerProcess.StartAsync(settings: tls.ServerSettings(sourcePort));
        await using var target = await RedisServerProcess.StartAsync(settings: tls.ServerSettings(targetPort));
        await using var plain = await ConnectionMultiplexer.ConnectAsync(source.ConfigurationString);
        await using var plainTarget = await ConnectionMultiplexer.ConnectAsync(target.ConfigurationString);
        var seeded = await TypedData.SeedAsync(plain.GetDatabase(), "tls", 2_000);

        var (exit, said) = await CoordinatorCli.RunAsync(
            new Dictionary<string, string>
            {
                ["REDIS_HOTSWAP_SOURCE"] = $"127.0.0.1:{sourcePort},ssl=true,password={source.Password}",
                ["REDIS_HOTSWAP_TARGET"] = $"localhost:{targetPort},ssl=true,password={target.Password}",
                ["SSL_CERT_FILE"] = tls.CertificatePath,
            },
            "copy-tls", "migrate", "--sync", "copy", "--expect-instances", "0", "--allow-unknown-clients");
        output.WriteLine(said);
        Assert.True(exit == 0, said);
        Assert.Contains("over the copy's own connections", said, StringComparison.Ordinal);
        Assert.DoesNotContain(source.Password, said, StringComparison.Ordinal);
        Assert.Empty(await TypedData.DifferencesAsync(plain.GetDatabase(), plainTarget.GetDatabase(), seeded));
    }

    [Theory]
    [InlineData("127.0.0.1:6379", false, true)]
    [InlineData("localhost:6379,password=secret,user=app", false, true)]
    [InlineData("127.0.0.1:6379", true, false)]
    [InlineData("127.0.0.1:6379,ssl=true,sslHost=redis.example", false, true)]
    [InlineData("127.0.0.1:6379,$DUMP=DUMPX", false, false)]
    [InlineData("127.0.0.1:6379,127.0.0.1:6380", false, false)]
    [InlineData("127.0.0.1:6379,tunnel=http:proxy:8080", false, false)]
    [InlineData("127.0.0.1:26379,serviceName=mymaster", false, false)]
    public void Serves_OnlyOneServerWithTheDefaultCommands(string configuration, bool isCluster, bool served) =>
        Assert.Equal(served, RespConnection.Serves(ConfigurationOptions.Parse(configuration), isCluster, _ => null));

    [Theory]
    [InlineData("SERedis_IssuerCertPath")]
    [InlineData("SERedis_ClientCertPfxPath")]
    [InlineData("SERedis_ClientCertPemPath")]
    public void Serves_NoTlsWhereStackExchangeRedisTrustsOrPresentsMore(string variable)
    {
        Assert.False(RespConnection.Serves(ConfigurationOptions.Parse("127.0.0.1:6379,ssl=true"), false, name => name == variable ? "/etc/redis/ca.pem" : null));
        Assert.True(RespConnection.Serves(ConfigurationOptions.Parse("127.0.0.1:6379"), false, name => name == variable ? "/etc/redis/ca.pem" : null));
    }

    // Several pages were in flight (the backfill runs 8), so several lanes sit idle; the server's idle timeout closes them all.
    [Fact]
    public async Task Copy_EveryIdleLaneClosed_CopiesTheNextPage()
    {
        await using var sides = await CopySides.StartAsync();
        var (source, _, _, to) = sides;
        await sides.SeedAsync(400);
        using var copier = sides.Copier();
        await Task.WhenAll(Enumerable.Range(0, 3).Select(p => copier.CopyAsync(0, CopySides.Keys(p * 100, 100))));

        Assert.Equal(3, await KillLaneConnectionsAsync(source, "dump"));

        await copier.CopyAsync(0, CopySides.Keys(300, 100));
        Assert.Equal(400, await to.Server.DatabaseSizeAsync());
    }

    // The page's first attempt started the chunked copy of a big key before its TARGET connection (closed while
    // idle) failed; the retried page copies that key again, which must wait for the first copy (they share its temporary
    // key). closed: false is the control.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Copy_ReusedLaneFailsAfterABigKeyStarted_TargetHoldsTheListOnce(bool closed)
    {
        await using var sides = await CopySides.StartAsync();
        var (_, target, from, to) = sides;
        var items = await SeedBigListAsync(from.Connection.GetDatabase());
        await from.Connection.GetDatabase().StringSetAsync("small", "v");
        using var copier = sides.Copier(bigKeyBytes: 4096);
        await copier.CopyAsync(0, ["small"]); // the lane is open, then idle

        Assert.Equal(closed ? 1 : 0, closed ? await KillLaneConnectionsAsync(target, "restore") : 0);

        var failure = await Record.ExceptionAsync(() => copier.CopyAsync(0, ["big", "small"]));
        await AssertBigListAsync(to, items, failure);
    }

    // SCAN may return a key twice (while the server rehashes), and the backfill copies 8 pages at once, so one
    // big key can be in two of them, on either path: its slow copies, which share its temporary key, run one at a time.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Copy_SameBigKeyInTwoPagesAtOnce_TargetHoldsItWhole(bool lanes)
    {
        await using var sides = await CopySides.StartAsync();
        var (_, _, from, to) = sides;
        var items = await SeedBigListAsync(from.Connection.GetDatabase());
        using var copier = sides.Copier(lanes, bigKeyBytes: 4096);

        var failure = await Record.ExceptionAsync(() => Task.WhenAll(copier.CopyAsync(0, ["big"]), copier.CopyAsync(0, ["big"])));
        await AssertBigListAsync(to, items, failure);
    }

    // The backfill's failing page ends MigrateByCopyAsync (the copier is disposed) while up to 7 other pages run.
    [Fact]
    public async Task Dispose_WhileAPageIsInFlight_ClosesItsLaneWhenItEnds()
    {
        await using var sides = await CopySides.StartAsync();
        var (source, _, _, to) = sides;
        await sides.SeedAsync(100);
        var copier = sides.Copier();
        var page = copier.CopyAsync(0, CopySides.Keys(0, 100));
        copier.Dispose();
        await page;
        await using var admin = await ConnectionMultiplexer.ConnectAsync(source.ConfigurationString + ",allowAdmin=true");
        await Eventually.TrueAsync(
            async () => (await admin.GetServer(source.Endpoint).ClientListAsync()).Count(c => c.LastCommand == "dump") == 0,
            "the lane's SOURCE connection to close", TimeSpan.FromSeconds(5));
    }

    // Credentials StackExchange.Redis accepts (its admin connection works) are accepted by the lanes too: a
    // password the server does not require, an empty one, an ACL user without a password.
    [Theory]
    [InlineData("password the server does not require")]
    [InlineData("empty password")]
    [InlineData("user without a password")]
    public async Task Copy_CredentialsTheAdminConnectionAccepts_CopiesOverTheLanes(string credentials)
    {
        var user = credentials == "user without a password";
        await using var sides = await CopySides.StartAsync(
            sourceSettings: user ? ["user app on nopass ~* &* +@all", "user default off"] : ["requirepass \"\""],
            sourceConfiguration: source => credentials switch
            {
                "empty password" => source.Endpoint + ",password=",
                "user without a password" => source.Endpoint + ",user=app",
                _ => source.ConfigurationString,
            });
        var (_, _, from, to) = sides;
        await from.Connection.GetDatabase().StringSetAsync("k", "v");
        using var copier = sides.Copier();
        Assert.True(copier.HasLanes);

        await copier.CopyAsync(0, ["k"]);
        Assert.Equal("v", await to.Connection.GetDatabase().StringGetAsync("k"));
    }

    private static async Task<int> SeedBigListAsync(IDatabase db)
    {
        const int Items = 100_000;
        foreach (var chunk in Enumerable.Range(0, Items).Chunk(10_000))
        {
            await db.ListRightPushAsync("big", [.. chunk.Select(i => (RedisValue)i)]);
        }

        return Items;
    }

    private static async Task AssertBigListAsync(RedisNode to, int items, Exception? failure)
    {
        var length = await to.Connection.GetDatabase().ListLengthAsync("big");
        Assert.True(failure is null && length == items, $"copy: {failure?.GetType().Name} {failure?.Message}; TARGET's list has {length} items of {items}");
    }

    // Strings of sizes around the lane's 64 KiB buffers, every other type, expiries, another database, and one key that
    // is gone from SOURCE but present on TARGET: by database, the keys to copy.
    private static async Task<Dictionary<int, RedisKey[]>> SeedAsync(IConnectionMultiplexer connection)
    {
        var db = connection.GetDatabase();
        var sizes = new[] { 0, 1, 16, 65_000, 65_536, 70_000, 3 << 20 };
        foreach (var size in sizes)
        {
            await db.StringSetAsync($"string:{size}", new string('x', size));
        }

        await db.StringSetAsync("expiring", "soon", TimeSpan.FromMinutes(5));
        await db.StringSetAsync("counter", 42);
        await db.HashSetAsync("hash", [new("a", "1"), new("b", "2")]);
        await db.ListRightPushAsync("list", ["a", "b", "c"]);
        await db.SetAddAsync("set", ["a", "b"]);
        await db.SortedSetAddAsync("zset", [new("a", 1), new("b", 2)]);
        await db.StreamAddAsync("stream", "field", "value");
        await db.KeyExpireAsync("hash", TimeSpan.FromHours(1));
        await connection.GetDatabase(3).StringSetAsync("elsewhere", "in database 3");
        return new()
        {
            [0] = [.. sizes.Select(s => (RedisKey)$"string:{s}"), "expiring", "counter", "hash", "list", "set", "zset", "stream", "never-on-source"],
            [3] = ["elsewhere"],
        };
    }

    private static async Task<int> KillLaneConnectionsAsync(RedisServerProcess server, string lastCommand)
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync(server.ConfigurationString + ",allowAdmin=true");
        var clients = await admin.GetServer(server.Endpoint).ClientListAsync();
        var lane = clients.Where(c => c.LastCommand == lastCommand).ToArray();
        foreach (var client in lane)
        {
            await admin.GetServer(server.Endpoint).ClientKillAsync(client.Id);
        }

        return lane.Length;
    }
}
