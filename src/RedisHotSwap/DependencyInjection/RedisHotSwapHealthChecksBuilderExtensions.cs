using Microsoft.Extensions.Diagnostics.HealthChecks;
using RedisHotSwap.Health;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds the swappable connection's health check.</summary>
public static class RedisHotSwapHealthChecksBuilderExtensions
{
    /// <summary>
    /// Checks that the side traffic goes to answers PING, and reports the side, the switch generation and whether
    /// the connection writes to a replica. Requires <c>AddRedisHotSwap</c>.
    /// </summary>
    public static IHealthChecksBuilder AddRedisHotSwap(this IHealthChecksBuilder builder, string name = "redis-hotswap", HealthStatus? failureStatus = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.AddCheck<RedisHotSwapHealthCheck>(name, failureStatus, tags ?? []);
    }
}
