using System.Globalization;
using System.Security.Cryptography;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Copy;

/// <summary>
/// A key's whole value read with its type's own commands, and its remaining time to live: what the type-level copy
/// writes, and what verification compares (a digest over a canonical form, so equal values from two servers, or two
/// encodings, compare equal).
/// </summary>
internal sealed class TypedValue
{
    private TypedValue(RedisType type, long timeToLiveMs, DateTime askedAt)
    {
        Type = type;
        TimeToLiveMs = timeToLiveMs;

        // Taken from when the time to live was asked for: the key never outlives its original on TARGET, however long
        // the copy takes (at most it expires earlier by the question's round trip).
        ExpiresAt = timeToLiveMs > 0 ? askedAt.AddMilliseconds(timeToLiveMs) : null;
    }

    /// <summary>When the key expires (UTC, the coordinator's clock); null without an expiry.</summary>
    public DateTime? ExpiresAt { get; }

    public RedisType Type { get; }

    /// <summary>Milliseconds left to live; -1 without an expiry.</summary>
    public long TimeToLiveMs { get; }

    private RedisValue String { get; init; }

    /// <summary>A string's value (null for other types).</summary>
    public RedisValue StringValue => String;

    private HashEntry[] Hash { get; init; } = [];

    private RedisValue[] Items { get; init; } = [];

    private SortedSetEntry[] Scored { get; init; } = [];

    private StreamEntry[] Entries { get; init; } = [];

    /// <summary>Reads <paramref name="key"/>; null when it does not exist.</summary>
    /// <exception cref="NotSupportedException">A type the copy does not know (a module's).</exception>
    public static async Task<TypedValue?> ReadAsync(IDatabase db, RedisKey key)
    {
        var askedAt = DateTime.UtcNow;
        var typeTask = db.KeyTypeAsync(key);
        var ttlTask = db.ExecuteAsync("PTTL", key);
        var type = await typeTask.ConfigureAwait(false);
        var ttl = (long)await ttlTask.ConfigureAwait(false);
        var value = type switch
        {
            RedisType.None => null,
            RedisType.String => new TypedValue(type, ttl, askedAt) { String = await db.StringGetAsync(key).ConfigureAwait(false) },
            RedisType.Hash => new TypedValue(type, ttl, askedAt) { Hash = await db.HashGetAllAsync(key).ConfigureAwait(false) },
            RedisType.List => new TypedValue(type, ttl, askedAt) { Items = await db.ListRangeAsync(key).ConfigureAwait(false) },
            RedisType.Set => new TypedValue(type, ttl, askedAt) { Items = await db.SetMembersAsync(key).ConfigureAwait(false) },
            RedisType.SortedSet => new TypedValue(type, ttl, askedAt) { Scored = await db.SortedSetRangeByRankWithScoresAsync(key).ConfigureAwait(false) },
            RedisType.Stream => new TypedValue(type, ttl, askedAt) { Entries = await db.StreamRangeAsync(key).ConfigureAwait(false) },
            _ => throw new NotSupportedException($"key type {type} cannot be copied type by type; only strings, hashes, lists, sets, sorted sets and streams can."),
        };

        // Deleted between TYPE and the read: as if it never existed.
        return value is { Type: not RedisType.String } && value.IsEmpty ? null : value is { Type: RedisType.String, String.IsNull: true } ? null : value;
    }

    private bool IsEmpty => Hash.Length == 0 && Items.Length == 0 && Scored.Length == 0 && Entries.Length == 0;

    /// <summary>Queues the commands that write this value to <paramref name="key"/> (which the caller deleted first).</summary>
    public IEnumerable<Task> Writes(IDatabaseAsync db, RedisKey key)
    {
        switch (Type)
        {
            case RedisType.String:
                yield return db.StringSetAsync(key, String);
                break;
            case RedisType.Hash:
                yield return db.HashSetAsync(key, Hash);
                break;
            case RedisType.List:
                yield return db.ListRightPushAsync(key, Items);
                break;
            case RedisType.Set:
                yield return db.SetAddAsync(key, Items);
                break;
            case RedisType.SortedSet:
                yield return db.SortedSetAddAsync(key, Scored);
                break;
            case RedisType.Stream:
                foreach (var entry in Entries)
                {
                    yield return db.StreamAddAsync(key, entry.Values, entry.Id);
                }

                break;
        }
    }

    /// <summary>SHA-256 over the type and a canonical form of the value (hash fields and set members sorted).</summary>
    public string Digest()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(RedisValue value)
        {
            var bytes = (byte[]?)value ?? [];
            hash.AppendData(BitConverter.GetBytes(bytes.Length));
            hash.AppendData(bytes);
        }

        Add(Type.ToString());
        switch (Type)
        {
            case RedisType.String:
                Add(String);
                break;
            case RedisType.Hash:
                foreach (var entry in Hash.OrderBy(e => (byte[]?)e.Name ?? [], ByteOrder.Instance))
                {
                    Add(entry.Name);
                    Add(entry.Value);
                }

                break;
            case RedisType.List:
                foreach (var item in Items)
                {
                    Add(item);
                }

                break;
            case RedisType.Set:
                foreach (var item in Items.OrderBy(i => (byte[]?)i ?? [], ByteOrder.Instance))
                {
                    Add(item);
                }

                break;
            case RedisType.SortedSet:
                foreach (var entry in Scored)
                {
                    Add(entry.Element);
                    Add(entry.Score.ToString("R", CultureInfo.InvariantCulture));
                }

                break;
            case RedisType.Stream:
                foreach (var entry in Entries)
                {
                    Add(entry.Id);
                    foreach (var field in entry.Values)
                    {
                        Add(field.Name);
                        Add(field.Value);
                    }
                }

                break;
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static ByteOrder Instance { get; } = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}
