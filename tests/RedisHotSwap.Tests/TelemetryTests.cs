using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests;

public sealed class TelemetryTests
{
    [Fact]
    public async Task Switch_RecordsCountDurationAndActiveSide()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var meters = app.Services.GetRequiredService<IMeterFactory>();
        using var switches = new MetricCollector<long>(meters, "RedisHotSwap", "redis.hotswap.switches");
        using var duration = new MetricCollector<double>(meters, "RedisHotSwap", "redis.hotswap.switch.duration");
        using var side = new MetricCollector<int>(meters, "RedisHotSwap", "redis.hotswap.active_side");

        side.RecordObservableInstruments();
        Assert.Equal(0, side.LastMeasurement!.Value);

        await app.Controller.SwitchToAsync(RedisSide.Target);

        side.RecordObservableInstruments();
        Assert.Equal(1, side.LastMeasurement!.Value);
        var recorded = Assert.Single(switches.GetMeasurementSnapshot());
        Assert.Equal("Target", recorded.Tags["redis.hotswap.side"]);
        Assert.True(Assert.Single(duration.GetMeasurementSnapshot()).Value > 0);
    }

    [Fact]
    public async Task FailedSwitch_KeepsTrafficAndNeverShowsAPassword()
    {
        await using var migration = await Migration.StartAsync();
        var settings = HotSwapApp.Settings(migration);
        settings["RedisHotSwap:Target"] = $"{migration.Target.Endpoint},password=wrong-{migration.Target.Password},connectTimeout=2000";
        await using var app = HotSwapApp.Create(migration, settings: settings);
        await app.Multiplexer.GetDatabase().StringSetAsync("k", "v");

        var ex = await Assert.ThrowsAsync<RedisHotSwapException>(() => app.Controller.SwitchToAsync(RedisSide.Target));

        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
        Assert.Equal("v", await app.Multiplexer.GetDatabase().StringGetAsync("k"));
        Assert.Contains("Target", ex.Message);
        var texts = app.Logs.GetSnapshot().Select(r => r.Message + r.Exception).Append(ex.ToString()).Append(app.Multiplexer.ToString()).ToArray();
        Assert.NotEmpty(texts);
        foreach (var password in new[] { migration.Source.Password, migration.Target.Password })
        {
            Assert.DoesNotContain(texts, t => t.Contains(password, StringComparison.Ordinal));
        }
    }
}
