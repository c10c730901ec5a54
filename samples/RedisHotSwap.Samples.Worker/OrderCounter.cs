using StackExchange.Redis;

namespace RedisHotSwap.Samples.Worker;

/// <summary>Once a second, records a tick in a stream and a counter, through the swappable connection.</summary>
internal sealed partial class OrderCounter(IConnectionMultiplexer redis, IHotSwapController controller, ILogger<OrderCounter> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var db = redis.GetDatabase(); // a cached handle: it follows every switch
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        do
        {
            try
            {
                var ticks = await db.StringIncrementAsync("worker:ticks");
                await db.StreamAddAsync("worker:events", [new("tick", ticks), new("at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())], maxLength: 1000, useApproximateMaxLength: true);
                Ticked(logger, ticks, controller.ActiveSide, controller.Generation);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // Redis being away is not the job's end: the next tick tries again.
                TickFailed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "tick {Ticks} written to {Side} (generation {Generation})")]
    private static partial void Ticked(ILogger logger, long ticks, RedisSide side, long generation);

    [LoggerMessage(Level = LogLevel.Warning, Message = "tick failed")]
    private static partial void TickFailed(ILogger logger, Exception exception);
}
