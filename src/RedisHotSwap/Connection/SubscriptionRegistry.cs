using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// The application's pub/sub handlers, kept apart from any one connection so that a switch can subscribe the new
/// connection to the same channels. Each connection subscribes once per channel and delivers here.
/// </summary>
/// <remarks>
/// Holds only the channels subscribed now: a channel leaves with its last handler, so the registry does not grow with
/// every channel ever used. The SDK's own channels (<see cref="AddOptional"/>) are not the application's to remove.
/// </remarks>
internal sealed class SubscriptionRegistry(ILogger logger)
{
    private readonly ConcurrentDictionary<RedisChannel, Action<RedisChannel, RedisValue>[]> handlers = new();
    private readonly ConcurrentDictionary<RedisChannel, bool> optional = new();
    private readonly Lock gate = new();

    public IReadOnlyCollection<RedisChannel> Channels => handlers.Keys.ToArray();

    public bool Contains(RedisChannel channel) => handlers.ContainsKey(channel);

    /// <summary>Whether a side that refuses <paramref name="channel"/> may still take traffic (the SDK's own channels).</summary>
    public bool IsOptional(RedisChannel channel) => optional.ContainsKey(channel);

    /// <summary>Adds a channel of the SDK's own that must never stop a switch.</summary>
    public void AddOptional(RedisChannel channel, Action<RedisChannel, RedisValue> handler)
    {
        optional[channel] = true;
        Add(channel, handler);
    }

    public void Add(RedisChannel channel, Action<RedisChannel, RedisValue> handler)
    {
        lock (gate)
        {
            handlers[channel] = handlers.TryGetValue(channel, out var existing) ? [.. existing, handler] : [handler];
        }
    }

    /// <summary>Removes one handler, or all of the channel's when <paramref name="handler"/> is null; returns those removed.</summary>
    public Action<RedisChannel, RedisValue>[] Remove(RedisChannel channel, Action<RedisChannel, RedisValue>? handler)
    {
        lock (gate)
        {
            if (!handlers.TryGetValue(channel, out var existing))
            {
                return [];
            }

            var remaining = handler is null ? [] : existing.Where(h => h != handler).ToArray();
            if (remaining.Length == 0)
            {
                handlers.TryRemove(channel, out _);
                optional.TryRemove(channel, out _);
            }
            else
            {
                handlers[channel] = remaining;
            }

            return handler is null ? existing : existing.Where(h => h == handler).ToArray();
        }
    }

    /// <summary>Removes every channel of the application (not the SDK's own); returns the handlers removed, by channel.</summary>
    public Dictionary<RedisChannel, Action<RedisChannel, RedisValue>[]> RemoveApplicationChannels()
    {
        lock (gate)
        {
            var removed = handlers.Where(pair => !optional.ContainsKey(pair.Key)).ToDictionary();
            foreach (var channel in removed.Keys)
            {
                handlers.TryRemove(channel, out _);
            }

            return removed;
        }
    }

    /// <summary>
    /// The delegate a connection subscribes with for <paramref name="channel"/>. It holds nothing but the channel and
    /// looks the handlers up on each message, so it is made per subscription and never cached.
    /// </summary>
    public Action<RedisChannel, RedisValue> HandlerFor(RedisChannel channel) =>
        (actual, message) => Dispatch(channel, actual, message);

    private void Dispatch(RedisChannel subscribed, RedisChannel actual, RedisValue message)
    {
        if (!handlers.TryGetValue(subscribed, out var current))
        {
            return;
        }

        foreach (var handler in current)
        {
            try
            {
                handler(actual, message);
            }
            catch (Exception ex)
            {
                Log.HandlerFailed(logger, ex, subscribed.ToString());
            }
        }
    }
}
