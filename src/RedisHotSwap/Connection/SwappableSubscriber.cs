using Microsoft.Extensions.Logging;
using RedisHotSwap.Forwarding;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// An <see cref="ISubscriber"/> whose handler subscriptions live in the multiplexer's registry, so a switch moves
/// them to the new side. Publishing and the other members are generated and go to the active side.
/// </summary>
// The blocking members wait on their async twins: subscriptions are moved between connections asynchronously, and
// StackExchange.Redis's own blocking Subscribe waits for the server's reply in the same way.
#pragma warning disable SER307
[GenerateForwarding(typeof(ISubscriber))]
internal sealed partial class SwappableSubscriber(HotSwapConnectionMultiplexer owner, object? asyncState)
    : Forwarder<ISubscriber>(owner), ISubscriber
{
    public IConnectionMultiplexer Multiplexer => Owner;

    public void Subscribe(RedisChannel channel, Action<RedisChannel, RedisValue> handler, CommandFlags flags = CommandFlags.None) =>
        SubscribeAsync(channel, handler, flags).GetAwaiter().GetResult();

    public async Task SubscribeAsync(RedisChannel channel, Action<RedisChannel, RedisValue> handler, CommandFlags flags = CommandFlags.None)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Owner.Subscriptions.Add(channel, handler);
        try
        {
            await Owner.EnsureSubscribedAsync(channel, flags).ConfigureAwait(false);
        }
        catch
        {
            // A channel the server refused must not stay registered: every later switch would try it again, and fail.
            await UnsubscribeAsync(channel, handler, CommandFlags.FireAndForget).ConfigureAwait(false);
            throw;
        }
    }

    public ChannelMessageQueue Subscribe(RedisChannel channel, CommandFlags flags = CommandFlags.None) =>
        SubscribeAsync(channel, flags).GetAwaiter().GetResult();

    public async Task<ChannelMessageQueue> SubscribeAsync(RedisChannel channel, CommandFlags flags = CommandFlags.None)
    {
        if (!QueueSubscription.IsSupported)
        {
            Log.QueueSubscriptionNotSwappable(Owner.Logger, channel.ToString());
            return await Current(out _).SubscribeAsync(channel, flags).ConfigureAwait(false);
        }

        // However the queue completes (its own Unsubscribe, or the channel unsubscribed here), it leaves the registry,
        // and the server if it was the channel's last subscriber.
        var subscription = QueueSubscription.For(channel, completed => _ = Task.Run(() => ReleaseQueueAsync(channel, completed)));
        await SubscribeAsync(channel, subscription.Handler, flags).ConfigureAwait(false);
        return subscription.Queue;
    }

    public void Unsubscribe(RedisChannel channel, Action<RedisChannel, RedisValue>? handler = null, CommandFlags flags = CommandFlags.None) =>
        UnsubscribeAsync(channel, handler, flags).GetAwaiter().GetResult();

    public Task UnsubscribeAsync(RedisChannel channel, Action<RedisChannel, RedisValue>? handler = null, CommandFlags flags = CommandFlags.None)
    {
        CompleteQueues(Owner.Subscriptions.Remove(channel, handler));
        return Owner.ReleaseSubscriptionAsync(channel, flags);
    }

    public void UnsubscribeAll(CommandFlags flags = CommandFlags.None) => UnsubscribeAllAsync(flags).GetAwaiter().GetResult();

    public async Task UnsubscribeAllAsync(CommandFlags flags = CommandFlags.None)
    {
        // The application's channels only: the SDK's own (the coordinator's directive) stay subscribed.
        foreach (var (channel, removed) in Owner.Subscriptions.RemoveApplicationChannels())
        {
            CompleteQueues(removed);
            await Owner.ReleaseSubscriptionAsync(channel, flags).ConfigureAwait(false);
        }
    }

    private async Task ReleaseQueueAsync(RedisChannel channel, QueueSubscription queue)
    {
        try
        {
            await UnsubscribeAsync(channel, queue.Handler, CommandFlags.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.UnsubscribeFailed(Owner.Logger, channel.ToString(), ex.Message);
        }
    }

    // As StackExchange.Redis does: unsubscribing a channel completes the queues subscribed to it.
    private static void CompleteQueues(Action<RedisChannel, RedisValue>[] removed)
    {
        foreach (var handler in removed)
        {
            QueueSubscription.Of(handler)?.Complete();
        }
    }

    private protected override ISubscriber Open(HotSwapRoute route) => route.Multiplexer.GetSubscriber(asyncState);
}
