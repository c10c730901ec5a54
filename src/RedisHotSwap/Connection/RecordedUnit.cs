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

    // The keys the unit's writes touch, each with the command that touches it; marked once the unit ran on a tracked route.
    private List<Touched>? touched;

    /// <summary>How many commands the unit holds so far: the index of the command whose keys are being touched.</summary>
    private protected abstract int Recorded { get; }

    private protected void Touch(RedisKey key) => (touched ??= []).Add(new Touched(Recorded, key, Unknown: false));

    private protected void Touch(RedisKey[]? keys)
    {
        foreach (var key in keys ?? [])
        {
            Touch(key);
        }
    }

    private protected void Touch(KeyValuePair<RedisKey, RedisValue>[]? pairs) => Touch((pairs ?? []).Select(p => p.Key).ToArray());

    private protected void Touch(ReadOnlyMemory<RedisKey> keys) => Touch(keys.ToArray());

    private protected void Touch(StreamPosition[]? positions) => Touch((positions ?? []).Select(p => p.Key).ToArray());

    private protected void TouchUnknown() => (touched ??= []).Add(new Touched(Recorded, default, Unknown: true));

    /// <summary>The keys touched since the last call, to be marked once the unit ran.</summary>
    private protected TouchedKeys TakeTouched()
    {
        var keys = new TouchedKeys(touched);
        touched = null;
        return keys;
    }

    /// <summary>
    /// The route one attempt of the unit runs on, read once, with its tracker entered when it has one. A copy
    /// migration's fence may hold the attempt there; let go after traffic moved, it runs where traffic is now, through
    /// that route's tracker. A unit bound to a route (<paramref name="bound"/>) runs there whatever is active.
    /// </summary>
    private protected async ValueTask<Entered> EnterAsync(HotSwapRoute? bound = null)
    {
        var route = bound ?? Owner.ActiveRoute;
        while (route.Tracker is { } tracker)
        {
            await tracker.EnterAsync().ConfigureAwait(false);
            if (bound is not null || ReferenceEquals(Owner.ActiveRoute, route))
            {
                return new Entered(route, tracker);
            }

            tracker.Exit();
            route = Owner.ActiveRoute;
        }

        return new Entered(route, null);
    }

    /// <summary><see cref="EnterAsync"/> for a unit sent by a blocking call (a batch).</summary>
    private protected Entered Enter()
    {
        var entering = EnterAsync();
        return entering.IsCompletedSuccessfully ? entering.Result : entering.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>A key a command of the unit writes (or, <paramref name="Unknown"/>, a write whose keys it cannot name).</summary>
    private protected readonly record struct Touched(int Command, RedisKey Key, bool Unknown);

    /// <summary>The route an attempt of a unit runs on, and the tracker of it that the attempt entered (null when untracked).</summary>
    private protected readonly record struct Entered(HotSwapRoute Route, WriteTracker? Tracker)
    {
        /// <summary>
        /// Once the attempt is over: marks the keys of the commands that may have run (<paramref name="ran"/>; all when
        /// null) on the tracker of the route they ran on, and lets that tracker go.
        /// </summary>
        public void Leave(TouchedKeys keys, int database, Func<int, bool>? ran = null)
        {
            if (Tracker is null)
            {
                return;
            }

            keys.MarkOn(Tracker, Route, database, ran);
            Tracker.Exit();
        }
    }

    /// <summary>The keys a unit's writes touched.</summary>
    private protected readonly struct TouchedKeys
    {
        private readonly List<Touched>? keys;

        internal TouchedKeys(List<Touched>? keys) => this.keys = keys;

        /// <summary>Marks them when <paramref name="route"/>, where the unit ran, is the one <paramref name="tracker"/> tracks.</summary>
        public void MarkOn(WriteTracker tracker, HotSwapRoute route, int database, Func<int, bool>? ran = null)
        {
            if (!ReferenceEquals(route.Tracker, tracker))
            {
                return;
            }

            var number = route.Multiplexer.GetDatabase(database).Database;
            foreach (var touched in keys ?? [])
            {
                if (ran is not null && !ran(touched.Command))
                {
                    continue;
                }

                if (touched.Unknown)
                {
                    tracker.MarkUnknown();
                }
                else
                {
                    tracker.Mark(number, touched.Key);
                }
            }
        }

        /// <summary>Only the keys of command <paramref name="command"/> of the unit, for that command sent again alone.</summary>
        public TouchedKeys Of(int command) => new(keys?.Where(t => t.Command == command).ToList());
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
