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
