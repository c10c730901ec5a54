using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests;

public sealed class HealthCheckTests
{
    [Fact]
    public async Task HealthCheck_ReportsTheActiveSide_AndFailsWhenItStopsAnswering()
    {
        await using var migration = await Migration.StartAsync();
        var settings = HotSwapApp.Settings(migration);
        settings["RedisHotSwap:Target"] += ",asyncTimeout=1000,syncTimeout=1000"; // TARGET will die: fail fast
        await using var app = HotSwapApp.Create(migration, services => services.AddHealthChecks().AddRedisHotSwap(), settings);
        var health = app.Services.GetRequiredService<HealthCheckService>();

        var healthy = await health.CheckHealthAsync();
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.Equal("Source", healthy.Entries["redis-hotswap"].Data["side"]);

        await app.Controller.SwitchToAsync(RedisSide.Target);
        var switched = (await health.CheckHealthAsync()).Entries["redis-hotswap"];
        Assert.Equal("Target", switched.Data["side"]);
        Assert.Equal(1L, switched.Data["generation"]);
        Assert.DoesNotContain(migration.Target.Password, (string)switched.Data["endpoint"]);

        await migration.Target.DisposeAsync();
        using var quick = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        Assert.Equal(HealthStatus.Unhealthy, (await health.CheckHealthAsync(quick.Token)).Status);
    }
}
