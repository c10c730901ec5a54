using System.Collections.Concurrent;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Copy;

/// <summary>
/// During a copy migration, sits on the route to SOURCE: every command of the application passes it (the fence can
/// hold them), and every write, once acknowledged, leaves the keys it touched here, to be shipped to TARGET's dirty
/// sets. Without a copy migration no route has one, and a command pays one field read.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphore's wait handle is never asked for: it holds nothing to release.")]
internal sealed class WriteTracker
{
    private readonly ConcurrentQueue<(int Database, RedisKey Key)> marks = new();
    private readonly bool marking;
    private readonly SemaphoreSlim flushing = new(1, 1);
    private Gate? held;
    private TaskCompletionSource? drained;
    private long unknown;
    private int inFlight;

    /// <summary>A tracker that marks keys, or with <paramref name="marking"/> false one that only holds and counts commands.</summary>
    public WriteTracker(bool marking = true) => this.marking = marking;

    /// <summary>Whether new commands are held (the fence).</summary>
    public bool IsHolding => Volatile.Read(ref held) is not null;

    /// <summary>Marks waiting to be shipped.</summary>
    public int Pending => marks.Count;

    /// <summary>Lets a command through, counted as in flight; while the fence holds, waits for it to be lifted.</summary>
    public ValueTask EnterAsync()
    {
        Interlocked.Increment(ref inFlight);
        if (Volatile.Read(ref held) is not { } gate)
        {
            return ValueTask.CompletedTask;
        }

        Exit();
        return WaitAsync(gate);
    }

    /// <summary><see cref="EnterAsync"/> for a blocking command.</summary>
    public void Enter()
    {
        var entering = EnterAsync();
        if (!entering.IsCompletedSuccessfully)
        {
            entering.AsTask().GetAwaiter().GetResult();
        }
    }

    /// <summary>The command has finished (and its keys are marked).</summary>
    public void Exit()
    {
        if (Interlocked.Decrement(ref inFlight) == 0 && Volatile.Read(ref held) is not null)
        {
            Volatile.Read(ref drained)?.TrySetResult();
        }
    }

    /// <summary>The write of <paramref name="key"/> in <paramref name="database"/> was acknowledged (or may have run).</summary>
    public void Mark(int database, RedisKey key)
    {
        if (marking)
        {
            marks.Enqueue((database, key));
        }
    }

    /// <summary>Marks each of <paramref name="keys"/>.</summary>
    public void Mark(int database, RedisKey[]? keys)
    {
        foreach (var key in keys ?? [])
        {
            Mark(database, key);
        }
    }

    /// <summary>Marks each key of <paramref name="pairs"/>.</summary>
    public void Mark(int database, KeyValuePair<RedisKey, RedisValue>[]? pairs)
    {
        foreach (var pair in pairs ?? [])
        {
            Mark(database, pair.Key);
        }
    }

    /// <summary>Marks each of <paramref name="keys"/>.</summary>
    public void Mark(int database, ReadOnlyMemory<RedisKey> keys)
    {
        foreach (var key in keys.Span)
        {
            Mark(database, key);
        }
    }

    /// <summary>Marks the stream of each of <paramref name="positions"/>.</summary>
    public void Mark(int database, StreamPosition[]? positions)
    {
        foreach (var position in positions ?? [])
        {
            Mark(database, position.Key);
        }
    }

    /// <summary>A write whose keys are not all known ran: the coordinator must copy every key again.</summary>
    public void MarkUnknown()
    {
        if (marking)
        {
            Interlocked.Increment(ref unknown);
        }
    }

    /// <summary>
    /// Holds every new command, and returns once the ones already let through have finished and marked their keys.
    /// </summary>
    public async Task HoldAsync(CancellationToken cancellationToken)
    {
        var drain = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref drained, drain);
        Interlocked.CompareExchange(ref held, new Gate(), null);
        if (Volatile.Read(ref inFlight) == 0)
        {
            drain.TrySetResult();
        }

        await drain.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Lets the held commands go, to whichever route is active now.</summary>
    public void Release() => Interlocked.Exchange(ref held, null)?.Open();

    /// <summary>
    /// Ships the marks taken so far to TARGET's dirty sets (one <c>SADD</c> per database) and the count of unknown
    /// writes; on failure they are kept for the next try.
    /// </summary>
    public async Task FlushAsync(IDatabase target, string migrationId)
    {
        // One flush at a time: the fence's flush returns only once an earlier one's marks have landed too.
        await flushing.WaitAsync().ConfigureAwait(false);
        try
        {
            await FlushCoreAsync(target, migrationId).ConfigureAwait(false);
        }
        finally
        {
            flushing.Release();
        }
    }

    private async Task FlushCoreAsync(IDatabase target, string migrationId)
    {
        var taken = new List<(int Database, RedisKey Key)>();
        while (marks.TryDequeue(out var mark))
        {
            taken.Add(mark);
        }

        var unknownTaken = Interlocked.Exchange(ref unknown, 0);
        try
        {
            var sends = taken
                .GroupBy(m => m.Database)
                .Select(g => target.SetAddAsync(MigrationKeys.Dirty(migrationId, g.Key), g.Select(m => (byte[]?)m.Key).OfType<byte[]>().Select(k => (RedisValue)k).Distinct().ToArray()))
                .Cast<Task>()
                .ToList();
            if (unknownTaken > 0)
            {
                sends.Add(target.StringIncrementAsync(MigrationKeys.DirtyUnknown(migrationId), unknownTaken));
            }

            await Task.WhenAll(sends).ConfigureAwait(false);
        }
        catch
        {
            foreach (var mark in taken)
            {
                marks.Enqueue(mark);
            }

            Interlocked.Add(ref unknown, unknownTaken);
            throw;
        }
    }

    private async ValueTask WaitAsync(Gate gate)
    {
        await gate.WaitAsync().ConfigureAwait(false);
        await EnterAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// The fence's gate: opened, it lets its waiters go one after the other in the order they came, each resuming on
    /// the opening thread up to its send, so that an application's pipeline keeps its order. (One task with many
    /// waiters would run only the last inline and post the others to the thread pool, which runs them in any order.)
    /// </summary>
    private sealed class Gate
    {
        private readonly Queue<TaskCompletionSource> waiters = new();
        private bool open;

        public Task WaitAsync()
        {
            lock (waiters)
            {
                if (open)
                {
                    return Task.CompletedTask;
                }

                var waiter = new TaskCompletionSource(); // its one continuation runs inline, on the opening thread
                waiters.Enqueue(waiter);
                return waiter.Task;
            }
        }

        public void Open()
        {
            TaskCompletionSource[] waiting;
            lock (waiters)
            {
                open = true;
                waiting = [.. waiters];
                waiters.Clear();
            }

            foreach (var waiter in waiting)
            {
                waiter.TrySetResult();
            }
        }
    }
}
