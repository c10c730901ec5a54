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

    public Task SubscribeAsync(RedisChannel channel, Action<RedisChannel, RedisValue> handler, CommandFlags flags = CommandFlags.None)
    {
        ArgumentNullException.ThrowIfNull(handler);
        Owner.Subscriptions.Add(channel, handler);
        return Owner.EnsureSubscribedAsync(channel, flags);
    }

    public ChannelMessageQueue Subscribe(RedisChannel channel, CommandFlags flags = CommandFlags.None)
    {
        Log.QueueSubscriptionNotSwappable(Owner.Logger, channel.ToString());
        return Current(out _).Subscribe(channel, flags);
    }

    public Task<ChannelMessageQueue> SubscribeAsync(RedisChannel channel, CommandFlags flags = CommandFlags.None)
    {
        Log.QueueSubscriptionNotSwappable(Owner.Logger, channel.ToString());
        return Current(out _).SubscribeAsync(channel, flags);
    }

    public void Unsubscribe(RedisChannel channel, Action<RedisChannel, RedisValue>? handler = null, CommandFlags flags = CommandFlags.None) =>
        UnsubscribeAsync(channel, handler, flags).GetAwaiter().GetResult();

    public Task UnsubscribeAsync(RedisChannel channel, Action<RedisChannel, RedisValue>? handler = null, CommandFlags flags = CommandFlags.None)
    {
        Owner.Subscriptions.Remove(channel, handler);
        return Owner.ReleaseSubscriptionAsync(channel, flags);
    }

    public void UnsubscribeAll(CommandFlags flags = CommandFlags.None) => UnsubscribeAllAsync(flags).GetAwaiter().GetResult();

    public async Task UnsubscribeAllAsync(CommandFlags flags = CommandFlags.None)
    {
        var channels = Owner.Subscriptions.Channels;
        Owner.Subscriptions.Clear();
        foreach (var channel in channels)
        {
            await Owner.ReleaseSubscriptionAsync(channel, flags).ConfigureAwait(false);
        }
    }

    private protected override ISubscriber Open(HotSwapRoute route) => route.Multiplexer.GetSubscriber(asyncState);
}
