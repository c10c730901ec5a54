using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;
using HttpServer = Microsoft.AspNetCore.Hosting.Server.IServer;

namespace RedisHotSwap.Compatibility.Tests.Infrastructure;

/// <summary>
/// An ASP.NET Core application instance on a loopback port, as a user builds it: AddRedisHotSwap, then the libraries
/// that take an <see cref="IConnectionMultiplexer"/> (SignalR backplane, Data Protection, output cache, distributed
/// cache) all given the swappable one.
/// </summary>
internal sealed class WebInstance : IAsyncDisposable
{
    private readonly WebApplication app;

    private WebInstance(WebApplication app, string address)
    {
        this.app = app;
        Address = address;
        Multiplexer = app.Services.GetRequiredService<IConnectionMultiplexer>();
        Controller = app.Services.GetRequiredService<IHotSwapController>();
        Logs = app.Services.GetFakeLogCollector();
    }

    public string Address { get; }

    public IConnectionMultiplexer Multiplexer { get; }

    public IHotSwapController Controller { get; }

    public FakeLogCollector Logs { get; }

    public IServiceProvider Services => app.Services;

    /// <summary>Error and critical log records of every library, the SDK included.</summary>
    public IReadOnlyList<FakeLogRecord> Errors => Logs.GetSnapshot().Where(r => r.Level >= LogLevel.Error).ToList();

    public static async Task<WebInstance> StartAsync(Migration migration, string? migrationId = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders().AddFakeLogging().SetMinimumLevel(LogLevel.Information);
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["RedisHotSwap:Source"] = migration.Source.ConfigurationString,
            ["RedisHotSwap:Target"] = migration.Target.ConfigurationString,
            ["RedisHotSwap:MigrationId"] = migrationId,
            ["RedisHotSwap:RetryInterval"] = "00:00:00.100",
            ["RedisHotSwap:HeartbeatInterval"] = "00:00:00.200",
            ["RedisHotSwap:HeartbeatTimeToLive"] = "00:00:01",
        });

        // Each library is handed the application's IConnectionMultiplexer, resolved once the container exists.
        WebApplication? app = null;
        IConnectionMultiplexer Redis() => app!.Services.GetRequiredService<IConnectionMultiplexer>();
        var services = builder.Services;
        services.AddRedisHotSwap(builder.Configuration.GetSection("RedisHotSwap"));
        services.AddSignalR().AddStackExchangeRedis(o => o.ConnectionFactory = _ => Task.FromResult(Redis()));
        services.AddDataProtection().SetApplicationName("compatibility").PersistKeysToStackExchangeRedis(() => Redis().GetDatabase(), "DataProtection-Keys");
        services.AddStackExchangeRedisOutputCache(o => o.ConnectionMultiplexerFactory = () => Task.FromResult(Redis()));
        services.AddStackExchangeRedisCache(o => o.ConnectionMultiplexerFactory = () => Task.FromResult(Redis()));

        app = builder.Build();
        app.UseOutputCache();
        app.MapHub<ChatHub>("/chat");
        app.MapGet("/stamp", () => Guid.NewGuid().ToString("N")).CacheOutput(p => p.Expire(TimeSpan.FromMinutes(5)));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<HttpServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new WebInstance(app, address);
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
    }

    /// <summary>Every message a client sends is broadcast to the clients of every instance, through the backplane.</summary>
    public sealed class ChatHub : Hub
    {
        public Task Send(int sequence) => Clients.All.SendAsync("message", sequence);
    }
}
