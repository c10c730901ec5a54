using RedisHotSwap.Copy;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// What a unit of commands sent later (a transaction, a batch) shares: it belongs to the swappable multiplexer and
/// runs on whichever connection is active when it is sent; scans and nested transactions have no place in it. Its
/// public members implement the unit's interface in the class that derives from it.
/// </summary>
internal abstract class RecordedUnit(HotSwapConnectionMultiplexer owner, int database, object? asyncState)
{
    public IConnectionMultiplexer Multiplexer => Owner;

    public int Database { get; } = database;

    private protected HotSwapConnectionMultiplexer Owner { get; } = owner;

    private protected object? AsyncState { get; } = asyncState;

    private IDatabase Inner => Owner.ActiveRoute.Multiplexer.GetDatabase(Database, AsyncState);

    // The keys the unit's writes touch, for a copy migration; marked once the unit ran on a tracked route.
    private List<RedisKey>? touched;
    private bool touchedUnknown;

    private protected void Touch(RedisKey key) => (touched ??= []).Add(key);

    private protected void Touch(RedisKey[]? keys) => (touched ??= []).AddRange(keys ?? []);

    private protected void Touch(KeyValuePair<RedisKey, RedisValue>[]? pairs) => (touched ??= []).AddRange((pairs ?? []).Select(p => p.Key));

    private protected void Touch(ReadOnlyMemory<RedisKey> keys) => (touched ??= []).AddRange(keys.ToArray());

    private protected void Touch(StreamPosition[]? positions) => (touched ??= []).AddRange((positions ?? []).Select(p => p.Key));

    private protected void TouchUnknown() => touchedUnknown = true;

    /// <summary>
    /// Runs the unit through a copy migration's fence when the active route is tracked, and marks the keys it touched
    /// once it ran; otherwise just runs it.
    /// </summary>
    private protected async Task<T> TrackedAsync<T>(Func<Task<T>> run)
    {
        var keys = TakeTouched();
        if (Owner.ActiveRoute.Tracker is not { } tracker)
        {
            return await run().ConfigureAwait(false);
        }

        await tracker.EnterAsync().ConfigureAwait(false);
        var route = Owner.ActiveRoute;
        try
        {
            return await run().ConfigureAwait(false);
        }
        finally
        {
            keys.MarkOn(tracker, route, Database);
            tracker.Exit();
        }
    }

    /// <summary>The keys touched since the last call, to be marked once the unit ran.</summary>
    private protected TouchedKeys TakeTouched()
    {
        var keys = new TouchedKeys(touched, touchedUnknown);
        touched = null;
        touchedUnknown = false;
        return keys;
    }

    /// <summary>The keys a unit's writes touched.</summary>
    private protected readonly record struct TouchedKeys(List<RedisKey>? Keys, bool Unknown)
    {
        /// <summary>Marks them when <paramref name="route"/>, where the unit ran, is the one <paramref name="tracker"/> tracks.</summary>
        public void MarkOn(WriteTracker tracker, HotSwapRoute route, int database)
        {
            if (!ReferenceEquals(route.Tracker, tracker))
            {
                return;
            }

            var number = route.Multiplexer.GetDatabase(database).Database;
            foreach (var key in Keys ?? [])
            {
                tracker.Mark(number, key);
            }

            if (Unknown)
            {
                tracker.MarkUnknown();
            }
        }
    }

    public bool IsConnected(RedisKey key, CommandFlags flags = CommandFlags.None) => Inner.IsConnected(key, flags);

#pragma warning disable SER308 // the interface's own blocking members, passed through as the client implements them
    public bool TryWait(Task task) => Inner.TryWait(task);

    public void Wait(Task task) => Inner.Wait(task);

    public T Wait<T>(Task<T> task) => Inner.Wait(task);

    public void WaitAll(params Task[] tasks) => Inner.WaitAll(tasks);
#pragma warning restore SER308

    public ITransactionAsync CreateTransaction(object? state) => throw NotInAUnit();

    public IAsyncEnumerable<HashEntry> HashScanAsync(RedisKey key, RedisValue pattern, int pageSize, long cursor, int pageOffset, CommandFlags flags) => throw NotInAUnit();

    public IAsyncEnumerable<RedisValue> HashScanNoValuesAsync(RedisKey key, RedisValue pattern, int pageSize, long cursor, int pageOffset, CommandFlags flags) => throw NotInAUnit();

    public IAsyncEnumerable<RedisValue> SetScanAsync(RedisKey key, RedisValue pattern, int pageSize, long cursor, int pageOffset, CommandFlags flags) => throw NotInAUnit();

    public IAsyncEnumerable<SortedSetEntry> SortedSetScanAsync(RedisKey key, RedisValue pattern, int pageSize, long cursor, int pageOffset, CommandFlags flags) => throw NotInAUnit();

    public IAsyncEnumerable<RedisValue> VectorSetRangeEnumerateAsync(RedisKey key, RedisValue start, RedisValue end, long count, Exclude exclude, CommandFlags flags) => throw NotInAUnit();

    private static NotSupportedException NotInAUnit() => new("Scans and nested transactions cannot be part of a transaction or a batch.");
}
