using System.Diagnostics.Metrics;

namespace RedisHotSwap.Telemetry;

/// <summary>
/// The <c>RedisHotSwap</c> meter: which side is active, how many switches, how long they took, how many commands
/// were sent again after a retiring connection could not send them.
/// </summary>
internal sealed class HotSwapTelemetry : IDisposable
{
    public const string MeterName = "RedisHotSwap";

    private readonly Meter meter;
    private readonly Counter<long> switches;
    private readonly Histogram<double> switchDuration;
    private readonly Counter<long> retried;

    public HotSwapTelemetry(IMeterFactory? meterFactory, Func<RedisSide> activeSide)
    {
        meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        meter.CreateObservableGauge(
            "redis.hotswap.active_side",
            () => (int)activeSide(),
            unit: "{side}",
            description: "The side traffic goes to: 0 for Source, 1 for Target.");
        switches = meter.CreateCounter<long>("redis.hotswap.switches", unit: "{switch}", description: "Completed switches, tagged with the side switched to.");
        switchDuration = meter.CreateHistogram<double>("redis.hotswap.switch.duration", unit: "s", description: "From the decision to switch until traffic flows to the new side.");
        retried = meter.CreateCounter<long>("redis.hotswap.commands.retried", unit: "{command}", description: "Commands a retiring connection could not send, sent again on the active one.");
    }

    public void Switched(RedisSide side, TimeSpan duration)
    {
        var tag = new KeyValuePair<string, object?>("redis.hotswap.side", side.ToString());
        switches.Add(1, tag);
        switchDuration.Record(duration.TotalSeconds, tag);
    }

    public void CommandRetried() => retried.Add(1);

    public void Dispose() => meter.Dispose();
}
