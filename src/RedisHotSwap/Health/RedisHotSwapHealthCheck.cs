using Microsoft.Extensions.Diagnostics.HealthChecks;
using RedisHotSwap.Connection;

namespace RedisHotSwap.Health;

/// <summary>
/// Healthy while the active side answers PING; the data says which side, which switch generation, and whether the
/// connection writes to a replica. Unhealthy when the active side does not answer.
/// </summary>
internal sealed class RedisHotSwapHealthCheck(HotSwapConnectionMultiplexer multiplexer) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var route = multiplexer.ActiveRoute;
        var data = new Dictionary<string, object>
        {
            ["side"] = route.Side.ToString(),
            ["generation"] = multiplexer.Generation,
            ["endpoint"] = route.Endpoint,
            ["writableReplica"] = route.WritableReplica,
        };

        try
        {
            var latency = await route.Multiplexer.GetDatabase().PingAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            data["latencyMs"] = latency.TotalMilliseconds;
            return HealthCheckResult.Healthy($"Redis traffic goes to {route.Side}.", data);
        }
        catch (Exception ex) when (ex is StackExchange.Redis.RedisException or TimeoutException)
        {
            return new HealthCheckResult(context.Registration.FailureStatus, $"{route.Side} ({route.Endpoint}) does not answer.", data: data);
        }
    }
}
