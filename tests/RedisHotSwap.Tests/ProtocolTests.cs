using System.Reflection;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Protocol;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests;

/// <summary>The protocol is the only thing the coordinator shares with the applications, and it is versioned and checked.</summary>
public sealed class ProtocolTests
{
    [Theory]
    [InlineData("RedisHotSwap.Coordinator")]
    [InlineData("redis-hotswap")]
    public void Coordinator_DependsOnTheProtocolAlone_NotOnTheSdk(string assemblyName)
    {
        var references = Assembly.Load(assemblyName).GetReferencedAssemblies().Select(a => a.Name!).ToArray();

        Assert.Contains("RedisHotSwap.Protocol", references);
        Assert.DoesNotContain("RedisHotSwap", references); // the SDK: its DI, flags, health checks, forwarding
        Assert.DoesNotContain(references, name => name.StartsWith("Microsoft.FeatureManagement", StringComparison.Ordinal)
            || name.StartsWith("Microsoft.Extensions.Diagnostics.HealthChecks", StringComparison.Ordinal));
    }

    [Fact]
    public void Protocol_ReferencesNothingOfEitherSide()
    {
        var references = typeof(MigrationKeys).Assembly.GetReferencedAssemblies().Select(a => a.Name!).ToArray();

        Assert.DoesNotContain(references, name => name.StartsWith("RedisHotSwap", StringComparison.Ordinal));
    }

    [Fact]
    public void InstanceReport_SaysTheEpochItIsArmedUnder_ThroughItsJson()
    {
        var report = new InstanceReport("h:1:abc", "h", 1, "app", RedisSide.Source, "m", 2, 9, DateTimeOffset.UnixEpoch, Armed: RedisSide.Target, ArmedUnder: 41);

        Assert.Equal(41, InstanceReport.FromJson(report.ToJson())?.ArmedUnder);
        Assert.Null(InstanceReport.FromJson((report with { Armed = null, ArmedUnder = null }).ToJson())?.ArmedUnder);
    }

    [Fact]
    public void InstanceReport_OfAnotherVersion_SaysWhyItCannotBeCounted()
    {
        var report = new InstanceReport("h:1:abc", "h", 1, "app", RedisSide.Source, "m", 2, 9, DateTimeOffset.UnixEpoch);

        Assert.Null(report.Problem);
        Assert.Contains($"protocol version {MigrationKeys.Version + 1}, not {MigrationKeys.Version}", (report with { Version = MigrationKeys.Version + 1 }).Problem);
        Assert.Contains("side", (report with { Side = (RedisSide)7 }).Problem);
        Assert.Contains("side", (report with { Armed = (RedisSide)7 }).Problem);
    }

    [Fact]
    public async Task Handoff_WithAnInstanceOfAnotherProtocolVersion_WaitsForItAndNamesIt_ChangingNothing()
    {
        const string id = "versions";
        await using var migration = await Migration.StartAsync();
        await using var coordinator = await MigrationCoordinator.ConnectAsync(new CoordinatorOptions
        {
            Source = migration.Source.ConfigurationString,
            Target = migration.Target.ConfigurationString,
            MigrationId = id,
            ExpectedInstances = 0,
            Cutover = CutoverMode.Handoff,
            PollInterval = TimeSpan.FromMilliseconds(50),
            InstancesTimeout = TimeSpan.FromSeconds(1),
            SyncTimeout = TimeSpan.FromSeconds(30),
        });
        await coordinator.ReplicateAsync();

        // An instance of a newer release: live, armed as far as its report goes, but its words are not this version's.
        var newer = new InstanceReport("other:7:x", "other", 7, "app", RedisSide.Source, id, 0, 1, DateTimeOffset.UtcNow, Version: MigrationKeys.Version + 1, Armed: RedisSide.Target);
        await migration.SourceDb.SetAddAsync(MigrationKeys.Instances(id), newer.InstanceId);
        await migration.SourceDb.StringSetAsync(MigrationKeys.Instance(id, newer.InstanceId, RedisSide.Source), newer.ToJson(), TimeSpan.FromMinutes(1));

        var halted = await Assert.ThrowsAnyAsync<MigrationHaltedException>(() => coordinator.MigrateAsync());

        Assert.Contains("other:7:x", halted.Message);
        Assert.Contains($"speaks protocol version {MigrationKeys.Version + 1}", halted.Message);
        Assert.Contains("role:master", await migration.InfoAsync(migration.Source, "replication"));
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
    }
}
