using Microsoft.Extensions.Hosting;
using StackExchange.Redis;

namespace RedisHotSwap.DependencyInjection;

/// <summary>
/// In a host, validates the options and connects when the host starts, so a bad configuration stops the start
/// with its message instead of surfacing at the first request.
/// </summary>
internal sealed class RedisHotSwapStartup(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _ = (IConnectionMultiplexer?)services.GetService(typeof(IConnectionMultiplexer));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
