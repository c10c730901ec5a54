namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>
/// The system's clock, which <see cref="Stall"/> moves forward at once: what a coordinator sees when it wakes from a
/// stall (a long GC pause, a frozen VM, SIGSTOP). Timers run on the system's clock, so waits still end.
/// </summary>
internal sealed class StallingTimeProvider : TimeProvider
{
    private long stalledTicks;

    public void Stall(TimeSpan span) => Interlocked.Add(ref stalledTicks, span.Ticks);

    public override DateTimeOffset GetUtcNow() => TimeProvider.System.GetUtcNow() + Stalled;

    public override long GetTimestamp() =>
        TimeProvider.System.GetTimestamp() + (long)(Stalled.TotalSeconds * TimestampFrequency);

    private TimeSpan Stalled => TimeSpan.FromTicks(Interlocked.Read(ref stalledTicks));
}
