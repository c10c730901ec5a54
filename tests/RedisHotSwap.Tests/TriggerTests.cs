using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.FeatureManagement;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests;

public sealed class TriggerTests
{
    [Fact]
    public async Task InMemoryReload_WithDuplicateNotifications_SwitchesExactlyOncePerChange()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);

        var toTarget = app.NextSwitch();
        app.SetUseTarget(true);
        for (var i = 0; i < 5; i++)
        {
            app.Configuration.Reload(); // spurious notifications, as file providers send
        }

        Assert.Equal(RedisSide.Target, (await toTarget).To);
        var toSource = app.NextSwitch();
        app.SetUseTarget(false);
        app.SetUseTarget(false);

        Assert.Equal(RedisSide.Source, (await toSource).To);
        var log = string.Join(Environment.NewLine, app.Logs.GetSnapshot().Select(r => r.Message)); // says why, should this fail
        Assert.True(app.Controller.Generation == 2, log);
        Assert.True(app.Logs.GetSnapshot().Count(r => r.Message.StartsWith("Switching Redis traffic", StringComparison.Ordinal)) == 2, log);
    }

    [Fact]
    public async Task JsonFileEdit_SwitchesWithoutRestart()
    {
        await using var migration = await Migration.StartAsync();
        var folder = Directory.CreateTempSubdirectory("redis-hotswap-config-");
        var file = Path.Combine(folder.FullName, "appsettings.json");
        await File.WriteAllTextAsync(file, Json(migration, useTarget: false));
        try
        {
            var configuration = new ConfigurationBuilder().AddJsonFile(file, optional: false, reloadOnChange: true).Build();
            await using var app = HotSwapApp.Create(configuration);
            var next = app.NextSwitch();

            await File.WriteAllTextAsync(file, Json(migration, useTarget: true));

            Assert.Equal(RedisSide.Target, (await next).To);
            Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task FeatureFlagFlip_SwitchesAndFlagOutranksUseTarget()
    {
        await using var migration = await Migration.StartAsync();
        var settings = HotSwapApp.Settings(migration, useTarget: true);
        settings["RedisHotSwap:FeatureFlag"] = "MoveRedis";
        settings["FeatureManagement:MoveRedis"] = "false";
        await using var app = HotSwapApp.Create(
            new ConfigurationBuilder().AddInMemoryCollection(settings).Build(),
            services => services.AddFeatureManagement());
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide); // the flag decides, not UseTarget

        var next = app.NextSwitch();
        app.Configuration["FeatureManagement:MoveRedis"] = "true";
        app.Configuration.Reload();

        var switched = await next;
        Assert.Equal(RedisSide.Target, switched.To);
        Assert.Contains("MoveRedis", switched.Reason);
    }

    [Fact]
    public async Task InvalidReload_IsRejectedAndLastGoodConfigurationKept()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);

        app.Configuration["RedisHotSwap:Target"] = migration.Source.ConfigurationString; // Source == Target
        app.SetUseTarget(true);
        await Eventually.TrueAsync(
            () => Task.FromResult(app.Logs.GetSnapshot().Any(r => r.Message.Contains("Rejected a RedisHotSwap configuration change", StringComparison.Ordinal))),
            "the reload to be rejected");
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);
        Assert.Equal(0, app.Controller.Generation);
        Assert.DoesNotContain(app.Logs.GetSnapshot(), r => r.Message.Contains(migration.Source.Password, StringComparison.Ordinal));

        var next = app.NextSwitch();
        app.Configuration["RedisHotSwap:Target"] = migration.Target.ConfigurationString;
        app.Configuration.Reload();
        Assert.Equal(RedisSide.Target, (await next).To);
    }

    [Fact]
    public async Task ActiveSideConfigurationStringChange_Reconnects()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration);
        var next = app.NextSwitch();

        app.Configuration["RedisHotSwap:Source"] = migration.Source.ConfigurationString + ",name=reconfigured";
        app.Configuration.Reload();

        var switched = await next;
        Assert.Equal(RedisSide.Source, switched.To);
        Assert.Equal("reconfigured", app.Multiplexer.ClientName);
    }

    private static string Json(Migration migration, bool useTarget) => System.Text.Json.JsonSerializer.Serialize(new
    {
        RedisHotSwap = new { migration.Source.ConfigurationString, UseTarget = useTarget },
    }).Replace("\"ConfigurationString\"", "\"Source\"", StringComparison.Ordinal)
      .Replace("\"UseTarget\"", $"\"Target\":\"{migration.Target.ConfigurationString}\",\"UseTarget\"", StringComparison.Ordinal);
}
