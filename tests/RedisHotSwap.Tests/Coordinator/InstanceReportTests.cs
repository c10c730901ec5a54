using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests.Coordinator;

public sealed class InstanceReportTests
{
    [Fact]
    public async Task Instances_ReportTheirSideAcrossASwitch_AndADeadOneExpires()
    {
        const string id = "reports";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var external = await ExternalInstance.StartAsync(HotSwapApp.Settings(migration, migrationId: id));
        await using var observer = await CoordinatorCli.ObserverAsync(migration, id);

        await Eventually.TrueAsync(async () => (await observer.StatusAsync()).Instances.Count == 2, "both instances to report");
        var reported = (await observer.StatusAsync()).Instances.Single(i => i.ProcessId == external.ProcessId);
        Assert.Equal("RedisHotSwap.TestApp", reported.Application);
        Assert.Equal(Environment.MachineName, reported.Host);
        Assert.Equal(RedisSide.Source, reported.Side);

        await app.Controller.SwitchToAsync(RedisSide.Target);
        await Eventually.TrueAsync(
            async () => (await observer.StatusAsync()).Instances.Any(i => i.ProcessId == Environment.ProcessId && i.Side == RedisSide.Target && i.Generation == 1),
            "the switched instance to report TARGET, generation 1, from TARGET");

        external.Kill();
        await Eventually.TrueAsync(async () => (await observer.StatusAsync()).Instances.All(i => i.ProcessId != external.ProcessId), "the killed instance's report to expire");
        Assert.Single((await observer.StatusAsync()).Instances);
    }
}
