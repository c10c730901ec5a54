using System.Runtime.CompilerServices;
using System.Threading.Channels;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// A <see cref="ChannelMessageQueue"/> that belongs to no connection: the registry feeds it from whichever connection
/// is active, so it keeps delivering across a switch. Completing it (its own <c>Unsubscribe</c>, or the application
/// unsubscribing the channel) calls back at once, so that it leaves the registry and the server.
/// </summary>
/// <remarks>
/// StackExchange.Redis offers no public way to make or feed a queue, and its queues complete when their connection is
/// retired. The queue is therefore made without a parent connection and written to through internal members
/// StackExchange.Redis uses itself (its constructor, <c>SynchronizedWrite</c>, and the channel behind the queue, given
/// a writer that reports completion), bound at compile time with <see cref="UnsafeAccessorAttribute"/>.
/// <see cref="IsSupported"/> probes them once: a client version without them falls back to a queue on the active
/// connection (which does not follow a switch), with a warning.
/// </remarks>
internal sealed class QueueSubscription
{
    private const string SubscriberType = "StackExchange.Redis.RedisSubscriber, StackExchange.Redis";

    private static readonly Lazy<bool> Supported = new(Probe);

    private QueueSubscription(RedisChannel channel, Action<QueueSubscription>? completed)
    {
        Queue = Create(channel, parent: null);
        Handler = Deliver;
        Inner(Queue) = new SignallingChannel(completed is null ? null : () => completed(this));
    }

    public static bool IsSupported => Supported.Value;

    public ChannelMessageQueue Queue { get; }

    /// <summary>
    /// A new queue for <paramref name="channel"/>; <paramref name="completed"/> runs once when it completes, however it
    /// was completed. Call only when <see cref="IsSupported"/>.
    /// </summary>
    public static QueueSubscription For(RedisChannel channel, Action<QueueSubscription> completed) => new(channel, completed);

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
            var completed = false;
            var probe = new QueueSubscription(RedisChannel.Literal("__redis-hotswap:probe"), _ => completed = true);
            probe.Deliver(probe.Queue.Channel, RedisValue.EmptyString);
            var delivered = probe.Queue.TryRead(out _);
            probe.Complete();
            return delivered && completed;
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

    [UnsafeAccessor(UnsafeAccessorKind.Field, Name = "_queue")]
    private static extern ref Channel<ChannelMessage> Inner(ChannelMessageQueue queue);

    [UnsafeAccessor(UnsafeAccessorKind.Method, Name = "SynchronizedWrite")]
    private static extern void Write(ChannelMessageQueue queue, in RedisChannel channel, in RedisValue message);

    // The queue's channel, as StackExchange.Redis makes it, with a writer that reports its completion the moment it
    // happens (the reader's Completion waits until every message has been read).
    private sealed class SignallingChannel : Channel<ChannelMessage>
    {
        public SignallingChannel(Action? completed)
        {
            var inner = Channel.CreateUnbounded<ChannelMessage>(new UnboundedChannelOptions
            {
                SingleWriter = true,
                SingleReader = false,
                AllowSynchronousContinuations = false,
            });
            Reader = inner.Reader;
            Writer = new SignallingWriter(inner.Writer, completed);
        }
    }

    private sealed class SignallingWriter(ChannelWriter<ChannelMessage> inner, Action? completed) : ChannelWriter<ChannelMessage>
    {
        public override bool TryComplete(Exception? error = null)
        {
            if (!inner.TryComplete(error))
            {
                return false;
            }

            completed?.Invoke();
            return true;
        }

        public override bool TryWrite(ChannelMessage item) => inner.TryWrite(item);

        public override ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default) => inner.WaitToWriteAsync(cancellationToken);
    }
}
