using RedisHotSwap.Coordinator;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Tests;

public sealed class CoordinatorUnitTests
{
    [Fact]
    public void ServerInfo_Parse_ReadsReplicationAndKeyspace()
    {
        var info = ServerInfo.Parse("# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_port:6379\r\nmaster_link_status:up\r\nmaster_sync_in_progress:0\r\nslave_repl_offset:1234\r\n# Keyspace\r\ndb0:keys=10,expires=0,avg_ttl=0\r\ndb3:keys=5,expires=1,avg_ttl=9\r\n");

        Assert.True(info.IsReplica);
        Assert.True(info.LinkUp);
        Assert.False(info.SyncInProgress);
        Assert.Equal(("10.0.0.1", 6379), (info.MasterHost, info.MasterPort));
        Assert.Equal(1234, info.ReplicaOffset);
        Assert.Equal(new Dictionary<int, long> { [0] = 10, [3] = 5 }, info.Keys);
        Assert.Equal(15, info.TotalKeys);
    }

    [Fact]
    public void MigrationState_RoundTripsThroughItsHash_AndClosesPhases()
    {
        var start = DateTimeOffset.FromUnixTimeMilliseconds(1_000);
        var state = new MigrationState().Enter(MigrationPhase.Replicating, start)
            .Enter(MigrationPhase.Cutover, start.AddSeconds(3)) with { WindowReplicationId = "abc", WindowFullSyncs = 2, Revision = 7 };

        var read = MigrationState.FromHash(state.ToHash())!;

        Assert.Equal(MigrationPhase.Cutover, read.Phase);
        Assert.Equal(7, read.Revision);
        Assert.Equal("abc", read.WindowReplicationId);
        Assert.Equal(2, read.WindowFullSyncs);
        Assert.Equal(4_000, read.Ended[MigrationPhase.Replicating]);
        Assert.False(read.Ended.ContainsKey(MigrationPhase.Cutover));
    }

    [Fact]
    public void ProtocolMessages_RoundTripAndRejectGarbage()
    {
        var report = new InstanceReport("h:1:abc", "h", 1, "app", RedisSide.Target, "m", 2, 9, DateTimeOffset.UnixEpoch);

        Assert.Equal(report, InstanceReport.FromJson(report.ToJson()));
        Assert.Null(InstanceReport.FromJson("not json"));
        Assert.Null(Directive.FromJson(null));
        Assert.Contains("\"side\":\"Target\"", report.ToJson());
    }
}

public sealed class PreflightRulesUnitTests
{
    private static readonly ServerInfo Source = ServerInfo.Parse("role:master\nrun_id:aaa\nredis_version:7.0.15\nused_memory:5000000\n");
    private static readonly ServerInfo EmptyTarget = ServerInfo.Parse("role:master\nrun_id:bbb\nredis_version:7.2.4\n");

    [Fact]
    public void Problems_ForAFreshPair_AreNone() =>
        Assert.Empty(PreflightRules.Problems(Facts(EmptyTarget)));

    [Theory]
    [InlineData("role:master\nrun_id:bbb\nredis_version:6.2.14\n", 0, "TARGET runs Redis 6.2.14, older than SOURCE's 7.0.15")]
    [InlineData("role:master\nrun_id:aaa\nredis_version:7.0.15\n", 0, "SOURCE and TARGET are the same server (run_id aaa)")]
    [InlineData("role:master\nrun_id:bbb\nredis_version:7.2.4\ndb0:keys=3,expires=0\n", 0, "TARGET holds 3 keys that REPLICAOF would erase")]
    [InlineData("role:master\nrun_id:bbb\nredis_version:7.2.4\n", 1_000_000, "TARGET's maxmemory (1000000 bytes) is below SOURCE's used memory (5000000 bytes)")]
    [InlineData("role:slave\nmaster_host:10.1.1.1\nmaster_port:6380\nrun_id:bbb\nredis_version:7.2.4\n", 0, "TARGET is already a replica of 10.1.1.1:6380")]
    public void Problems_NameEachRefusalOnOneLine(string target, long maxMemory, string expected)
    {
        var line = Assert.Single(PreflightRules.Problems(Facts(ServerInfo.Parse(target)) with { TargetMaxMemory = maxMemory }));

        Assert.StartsWith(expected, line);
        Assert.DoesNotContain('\n', line);
    }

    [Fact]
    public void Problems_WhenResuming_AcceptTheDataReplicationBrought()
    {
        var replica = ServerInfo.Parse("role:slave\nmaster_host:127.0.0.1\nmaster_port:6379\nrun_id:bbb\nredis_version:7.2.4\ndb0:keys=900,expires=0\n");

        Assert.Empty(PreflightRules.Problems(Facts(replica) with { TargetReplicatesSource = true, Phase = MigrationPhase.Cutover }));
    }

    private static PreflightFacts Facts(ServerInfo target) => new(Source, target, 0, false, MigrationPhase.New, false, "m");
}
