using RedisHotSwap.Connection;

namespace RedisHotSwap.Forwarding;

/// <summary>
/// What the generated forwarding members of a swappable handle rely on: the handle on the active route, and the
/// replay of a command that a retiring route could not send.
/// </summary>
internal abstract class Forwarder<TContract>
    where TContract : class
{
    // The inner handle of the route it was opened on; replaced (one allocation) only after a switch.
    private Lane? lane;

    /// <summary>For a handle (database, subscriber).</summary>
    private protected Forwarder(HotSwapConnectionMultiplexer owner) => Owner = owner;

    /// <summary>For the multiplexer itself, which sets <see cref="Owner"/> to itself.</summary>
    private protected Forwarder() => Owner = null!;

    // A plain field, not a virtual property: it is read on every command.
    private protected HotSwapConnectionMultiplexer Owner { get; init; }

    /// <summary>Opens the inner handle on <paramref name="route"/>; called once per route.</summary>
    private protected abstract TContract Open(HotSwapRoute route);

    /// <summary>The handle on the active route; <paramref name="route"/> is the route it belongs to.</summary>
    private protected TContract Current(out HotSwapRoute route)
    {
        route = Owner.ActiveRoute;
        var current = lane;
        if (current is null || !ReferenceEquals(current.Route, route))
        {
            current = new Lane(route, Open(route));
            lane = current;
        }

        return current.Handle;
    }

    // A synchronous failure (a blocking call, or a task-returning call that threw before it returned a task).
    private protected bool ShouldReplay(Exception exception, HotSwapRoute route) =>
        route.MayRecover && Replay.IsUnsent(exception) && Owner.CanResendAsync(exception, route).AsTask().GetAwaiter().GetResult();

    // The same decision for an asynchronous failure that is known to be unsent.
    private protected ValueTask<bool> ShouldReplayAsync(Exception exception, HotSwapRoute route) =>
        route.MayRecover && Replay.IsUnsent(exception) ? Owner.CanResendAsync(exception, route) : ValueTask.FromResult(false);

    private protected Task ReplayAsync(Task first, HotSwapRoute route, Func<Task> again) => Replay.Async(first, again, ex => Owner.CanResendAsync(ex, route));

    private protected Task<T> ReplayAsync<T>(Task<T> first, HotSwapRoute route, Func<Task<T>> again) => Replay.Async(first, again, ex => Owner.CanResendAsync(ex, route));

    private sealed record Lane(HotSwapRoute Route, TContract Handle);
}
