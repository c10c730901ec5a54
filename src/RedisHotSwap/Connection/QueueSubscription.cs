using System.Runtime.CompilerServices;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// A <see cref="ChannelMessageQueue"/> that belongs to no connection: the registry feeds it from whichever connection
/// is active, so it keeps delivering across a switch. Completing it (its own <c>Unsubscribe</c>, or the application
/// unsubscribing the channel) removes it from the registry.
/// </summary>
/// <remarks>
/// StackExchange.Redis offers no public way to make or feed a queue, and its queues complete when their connection is
/// retired. The queue is therefore made without a parent connection and written to through the two internal members
/// StackExchange.Redis uses itself (its constructor and <c>SynchronizedWrite</c>), bound at compile time with
/// <see cref="UnsafeAccessorAttribute"/>. <see cref="IsSupported"/> probes them once: a client version without them
/// falls back to a queue on the active connection (which does not follow a switch), with a warning.
/// </remarks>
internal sealed class QueueSubscription
{
    private const string SubscriberType = "StackExchange.Redis.RedisSubscriber, StackExchange.Redis";

    private static readonly Lazy<bool> Supported = new(Probe);

    private QueueSubscription(RedisChannel channel)
    {
        Queue = Create(channel, parent: null);
        Handler = Deliver;
    }

    public static bool IsSupported => Supported.Value;

    public ChannelMessageQueue Queue { get; }

    /// <summary>A new queue for <paramref name="channel"/>; call only when <see cref="IsSupported"/>.</summary>
    public static QueueSubscription For(RedisChannel channel) => new(channel);

    /// <summary>The handler the registry calls for each message; one delegate, so that it can be removed again.</summary>
    public Action<RedisChannel, RedisValue> Handler { get; }

    /// <summary>Ends the queue (the application unsubscribed its channel); readers see it complete.</summary>
    public void Complete() => Queue.Unsubscribe(CommandFlags.FireAndForget);

    /// <summary>The queue behind a registered handler, if the handler is one.</summary>
    public static QueueSubscription? Of(Action<RedisChannel, RedisValue> handler) => handler.Target as QueueSubscription;

    private void Deliver(RedisChannel channel, RedisValue message) => Write(Queue, channel, message);

    private static bool Probe()
    {
        try
        {
            var probe = Create(RedisChannel.Literal("__redis-hotswap:probe"), parent: null);
            Write(probe, probe.Channel, RedisValue.EmptyString);
            return probe.TryRead(out _);
        }
        catch (Exception ex) when (ex is MissingMemberException or TypeLoadException)
        {
            return false;
        }
    }

    [UnsafeAccessor(UnsafeAccessorKind.Constructor)]
    private static extern ChannelMessageQueue Create(
        in RedisChannel channel,
        [UnsafeAccessorType(SubscriberType)] object? parent);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "SynchronizedWrite")]
    private static extern void Write(ChannelMessageQueue queue, in RedisChannel channel, in RedisValue message);
}
