// A web application on the swappable connection. Passwords belong in user secrets or the environment
// (RedisHotSwap__Source="host:6379,password=..."), not in appsettings.json. Turning the UseRedisTarget flag on (in
// appsettings.json, or any configuration source that reloads) moves the running application to TARGET.
using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.FeatureManagement;
using RedisHotSwap;
using StackExchange.Redis;

var builder = WebApplication.CreateBuilder(args);

builder.Services.AddFeatureManagement();
builder.Services.AddRedisHotSwap(builder.Configuration.GetSection("RedisHotSwap"));

// IDistributedCache on the swappable IConnectionMultiplexer: the cache follows every switch.
builder.Services.AddStackExchangeRedisCache(_ => { });
builder.Services.AddOptions<RedisCacheOptions>()
    .Configure<IConnectionMultiplexer>((options, redis) => options.ConnectionMultiplexerFactory = () => Task.FromResult(redis));

builder.Services.AddHealthChecks().AddRedisHotSwap();

var app = builder.Build();

app.MapGet("/carts/{id}", async (string id, IDistributedCache cache, CancellationToken ct) =>
    await cache.GetStringAsync($"cart:{id}", ct) is { } cart ? Results.Text(cart, "application/json") : Results.NotFound());

app.MapPut("/carts/{id}", async (string id, JsonElement cart, IDistributedCache cache, CancellationToken ct) =>
{
    await cache.SetStringAsync($"cart:{id}", cart.GetRawText(), new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(30) }, ct);
    return Results.NoContent();
});

// {"status":"Healthy","side":"Source","generation":0,...}: which Redis this instance uses right now.
app.MapHealthChecks("/health", new HealthCheckOptions
{
    ResponseWriter = (context, report) =>
    {
        var entry = report.Entries.Values.FirstOrDefault();
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsJsonAsync(new
        {
            status = report.Status.ToString(),
            side = entry.Data.GetValueOrDefault("side"),
            generation = entry.Data.GetValueOrDefault("generation"),
            endpoint = entry.Data.GetValueOrDefault("endpoint"),
            writableReplica = entry.Data.GetValueOrDefault("writableReplica"),
            description = entry.Description,
        });
    },
});

app.Run();
