namespace RedisHotSwap;

/// <summary>
/// The control surface of the swappable connection: which side is active, when it changes, and a way to change it
/// from code. Resolve it from DI beside <c>IConnectionMultiplexer</c>; both are the same object.
/// </summary>
/// <remarks>
/// Configuration and feature-flag changes switch by themselves. A switch made here holds until the configured
/// side next changes (a reload or flag flip that changes the answer), which then decides again.
/// </remarks>
public interface IHotSwapController
{
    /// <summary>The side that new commands go to.</summary>
    RedisSide ActiveSide { get; }

    /// <summary>How many switches this instance has applied since it started; 0 before the first.</summary>
    long Generation { get; }

    /// <summary>Raised once traffic flows to the new side, before the old connection is drained and closed.</summary>
    event EventHandler<RedisSwitchedEventArgs>? Switched;

    /// <summary>
    /// Connects to <paramref name="side"/>, checks that it answers, moves subscriptions and traffic to it, then drains
    /// and closes the old connection. Concurrent calls run one after the other.
    /// </summary>
    /// <returns><see langword="true"/> when traffic moved; <see langword="false"/> when <paramref name="side"/> was already active.</returns>
    /// <exception cref="RedisHotSwapException">The new side could not be reached; traffic stays where it was.</exception>
    Task<bool> SwitchToAsync(RedisSide side, CancellationToken cancellationToken = default);
}

/// <summary>Describes a completed switch.</summary>
public sealed class RedisSwitchedEventArgs(RedisSide from, RedisSide to, long generation, TimeSpan duration, string reason) : EventArgs
{
    /// <summary>The side traffic left.</summary>
    public RedisSide From { get; } = from;

    /// <summary>The side traffic now goes to.</summary>
    public RedisSide To { get; } = to;

    /// <summary>The value of <see cref="IHotSwapController.Generation"/> after this switch.</summary>
    public long Generation { get; } = generation;

    /// <summary>From the decision to switch until traffic flowed to <see cref="To"/>.</summary>
    public TimeSpan Duration { get; } = duration;

    /// <summary>What asked for the switch: a configuration change, a feature flag, or code.</summary>
    public string Reason { get; } = reason;
}

/// <summary>A switch could not be carried out; the connection stays on the side it was on.</summary>
public sealed class RedisHotSwapException(string message, Exception? innerException = null) : Exception(message, innerException);
