using System.Collections.Concurrent;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Copy;

/// <summary>
/// SOURCE's keyspace notifications, where it sends them (<c>notify-keyspace-events</c>, set by the operator: the copy
/// changes no configuration): every key anyone changed, checked against the keys the instances marked. A key changed
/// that no instance marked was written by a client that is not an instance (or expired, or was evicted): the copy takes
/// it again, and says so.
/// </summary>
/// <remarks>
/// A cross-check, not the source of truth: notifications are fire and forget (a dropped subscription loses some), and
/// a key an instance marked once during the run is explained for the rest of it, even if another client wrote it too.
/// </remarks>
internal sealed class KeyspaceWatch(IConnectionMultiplexer source)
{
    private readonly ConcurrentDictionary<(int Database, string Key), (long Version, bool Written)> notified = new();
    private readonly ConcurrentDictionary<(int Database, string Key), bool> marked = new();
    private long version;

    /// <summary>Subscribes; returns one line for the operator saying what is watched.</summary>
    public async Task<string> StartAsync(RedisNode node)
    {
        string? events;
        try
        {
            events = await node.ConfigGetAsync("notify-keyspace-events").ConfigureAwait(false) ?? string.Empty;
        }
        catch (Exception ex) when (ex is RedisServerException or RedisCommandException)
        {
            events = null; // CONFIG renamed away, as managed services do: watch anyway, whatever comes
        }

        if (events is not null && !events.Contains('K', StringComparison.Ordinal) && !events.Contains('E', StringComparison.Ordinal))
        {
            return "keyspace notifications are off on SOURCE (notify-keyspace-events is empty): a writer that is not an instance is found only while it is connected (CLIENT LIST)";
        }

        Active = true;
        var subscriber = source.GetSubscriber();
        await subscriber.SubscribeAsync(RedisChannel.Pattern("__keyspace@*__:*"), (channel, message) => Notified(Split(channel, "__keyspace@") is { } at ? (at.Database, at.Tail, (string)message!) : null)).ConfigureAwait(false);
        await subscriber.SubscribeAsync(RedisChannel.Pattern("__keyevent@*__:*"), (channel, message) => Notified(Split(channel, "__keyevent@") is { } at ? (at.Database, (string)message!, at.Tail) : null)).ConfigureAwait(false);
        return events is null
            ? "keyspace notifications: SOURCE does not say whether it sends them (CONFIG refused); any that come are checked against the instances' marks"
            : $"keyspace notifications on SOURCE ('{events}') are checked against the instances' marks";
    }

    /// <summary>Whether notifications are watched (SOURCE sends them, or may).</summary>
    public bool Active { get; private set; }

    /// <summary>Returns once every notification SOURCE sent before now has arrived (a <c>PING</c> behind them).</summary>
    public Task BarrierAsync() => source.GetSubscriber().PingAsync();

    /// <summary>
    /// Forgets what was notified so far, once every instance tracks its writes: whatever was written before is read by
    /// the backfill that follows, and no instance marked it.
    /// </summary>
    public async Task ForgetAsync()
    {
        await BarrierAsync().ConfigureAwait(false);
        notified.Clear();
    }

    /// <summary>Keys the instances marked: their changes are explained.</summary>
    public void Marked(int database, IEnumerable<RedisKey> keys)
    {
        foreach (var key in keys)
        {
            marked[(database, (string)key!)] = true;
        }
    }

    /// <summary>
    /// The keys notified since they were last copied that no instance marked, and those of them that were written (not
    /// only expired or evicted); with <paramref name="written"/> false, only the ones that expired or were evicted (an
    /// instance's mark of a write may still be on its way).
    /// </summary>
    public (List<(int Database, string Key, long Version)> Keys, List<(int Database, string Key)> Written) Unexplained(bool written)
    {
        var keys = new List<(int, string, long)>();
        var writes = new List<(int, string)>();
        foreach (var (key, (at, wasWritten)) in notified)
        {
            if (marked.ContainsKey(key))
            {
                notified.TryRemove(KeyValuePair.Create(key, (at, wasWritten))); // explained: an instance wrote it
                continue;
            }

            if (wasWritten && !written)
            {
                continue;
            }

            keys.Add((key.Database, key.Key, at));
            if (wasWritten)
            {
                writes.Add(key);
            }
        }

        return (keys, writes);
    }

    /// <summary>These keys were copied again: forgotten, unless notified again since.</summary>
    public void Copied(IEnumerable<(int Database, string Key, long Version)> keys)
    {
        foreach (var (database, key, at) in keys)
        {
            if (notified.TryGetValue((database, key), out var now) && now.Version == at)
            {
                notified.TryRemove(KeyValuePair.Create((database, key), now));
            }
        }
    }

    private void Notified((int Database, string Key, string Event)? notification)
    {
        if (notification is not { } n || MigrationKeys.IsProtocolKey(n.Key))
        {
            return;
        }

        var written = n.Event is not ("expired" or "evicted");
        var at = Interlocked.Increment(ref version);
        notified.AddOrUpdate((n.Database, n.Key), (at, written), (_, old) => (at, old.Written || written));
    }

    // "__keyspace@3__:key" -> (3, "key").
    private static (int Database, string Tail)? Split(RedisChannel channel, string prefix)
    {
        var name = channel.ToString();
        var end = name.IndexOf("__:", StringComparison.Ordinal);
        return name.StartsWith(prefix, StringComparison.Ordinal) && end > prefix.Length
            && int.TryParse(name.AsSpan(prefix.Length, end - prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var database)
            ? (database, name[(end + 3)..])
            : null;
    }
}
