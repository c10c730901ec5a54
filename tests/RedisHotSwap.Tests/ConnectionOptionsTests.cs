using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

public sealed class ConnectionOptionsTests
{
    [Fact]
    public async Task ConfigureConnection_ShapesEverySideOnEveryConnect()
    {
        await using var migration = await Migration.StartAsync();
        var calls = new List<RedisSide>();
        await using var app = HotSwapApp.Create(migration, services => services.Configure<RedisHotSwapOptions>(o =>
            o.ConfigureConnection = (side, options) =>
            {
                lock (calls)
                {
                    calls.Add(side);
                }

                options.ClientName = $"hooked-{side}";
            }));

        Assert.Contains("name=hooked-Source", await ClientListAsync(migration.SourceDb));
        await app.Controller.SwitchToAsync(RedisSide.Target);
        Assert.Contains("name=hooked-Target", await ClientListAsync(migration.TargetDb));
        await app.Controller.SwitchToAsync(RedisSide.Source);

        Assert.Equal([RedisSide.Source, RedisSide.Target, RedisSide.Source], calls);
    }

    [Fact]
    public async Task Start_SourceDownWithAbortConnectFalse_StartsUnhealthyAndConnectsWhenItComesBack()
    {
        await using var migration = await Migration.StartAsync();
        var port = RedisServerProcess.ReservePort();
        var settings = HotSwapApp.Settings(migration, migrationId: null);
        settings["RedisHotSwap:Source"] = $"127.0.0.1:{port},password=late-secret,abortConnect=false,connectTimeout=500";
        await using var app = HotSwapApp.Create(migration, services =>
        {
            services.AddHealthChecks().AddRedisHotSwap();
            services.Configure<RedisHotSwapOptions>(o => o.ConfigureConnection = (_, options) => options.ReconnectRetryPolicy = new LinearRetry(100));
        }, settings);
        var health = app.Services.GetRequiredService<HealthCheckService>();

        Assert.Equal(HealthStatus.Unhealthy, (await health.CheckHealthAsync()).Status);
        Assert.DoesNotContain(app.Logs.GetSnapshot(), r => r.Message.Contains("late-secret", StringComparison.Ordinal));

        await using var late = await RedisServerProcess.StartAsync(password: "late-secret", port: port);
        await Eventually.TrueAsync(async () => (await health.CheckHealthAsync()).Status == HealthStatus.Healthy, "SOURCE to be connected once it runs");
        await app.Multiplexer.GetDatabase().StringSetAsync("written-late", "1");
        await using var check = await ConnectionMultiplexer.ConnectAsync(late.ConfigurationString);
        Assert.Equal("1", (string?)await check.GetDatabase().StringGetAsync("written-late"));
    }

    [Fact]
    public async Task Start_SourceDown_ThrowsOneLineNamingTheRemedyWithoutPassword()
    {
        await using var migration = await Migration.StartAsync();
        var settings = HotSwapApp.Settings(migration, migrationId: null);
        settings["RedisHotSwap:Source"] = $"127.0.0.1:{RedisServerProcess.ReservePort()},password=down-secret,connectTimeout=500";

        var error = Assert.ThrowsAny<Exception>(() => HotSwapApp.Create(migration, settings: settings));

        Assert.DoesNotContain('\n', error.Message);
        Assert.DoesNotContain("down-secret", error.Message, StringComparison.Ordinal);
        Assert.Contains("abortConnect=false", error.Message, StringComparison.Ordinal);
    }

    private static async Task<string> ClientListAsync(IDatabase admin) => (string)(await admin.ExecuteAsync("CLIENT", "LIST"))!;
}
