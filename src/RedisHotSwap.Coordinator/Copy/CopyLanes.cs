using System.Collections.Concurrent;
using RedisHotSwap.Coordinator.Servers;

namespace RedisHotSwap.Coordinator.Copy;

/// <summary>A connection to SOURCE and one to TARGET, used by one page of the copy at a time.</summary>
internal sealed class CopyLane(RespConnection source, RespConnection target) : IDisposable
{
    public RespConnection Source { get; } = source;

    public RespConnection Target { get; } = target;

    /// <summary>Whether the lane copied a page before: its connections may have been closed by the server while idle.</summary>
    public bool Reused { get; set; }

    public void Dispose()
    {
        Source.Dispose();
        Target.Dispose();
    }
}

/// <summary>
/// The copy's own connections (<see cref="RespConnection"/>), one lane per page in flight, opened as the pages need
/// them and kept until the copy ends. Only where both sides are one server each (see <see cref="RespConnection.Serves"/>):
/// into a cluster, through a tunnel or with renamed commands, the copy goes through StackExchange.Redis.
/// </summary>
internal sealed class CopyLanes(RedisNode source, RedisNode target) : IDisposable
{
    private readonly ConcurrentBag<CopyLane> idle = [];
    private bool disposed;

    /// <summary>The lanes between <paramref name="source"/> and <paramref name="target"/>, or null when either side cannot be reached this way.</summary>
    public static CopyLanes? For(RedisNode source, RedisNode target) =>
        RespConnection.Serves(source.Options, source.IsCluster) && RespConnection.Serves(target.Options, target.IsCluster)
            ? new CopyLanes(source, target)
            : null;

    /// <summary>An idle lane, or a new one; always a new one when <paramref name="fresh"/> (the idle ones are as old as the one that failed).</summary>
    public async Task<CopyLane> RentAsync(bool fresh = false)
    {
        if (!fresh && idle.TryTake(out var lane))
        {
            lane.Reused = true;
            return lane;
        }

        RespConnection? from = null;
        try
        {
            from = await RespConnection.ConnectAsync(source.Name, source.Host, source.Port, source.Options).ConfigureAwait(false);
            return new CopyLane(from, await RespConnection.ConnectAsync(target.Name, target.Host, target.Port, target.Options).ConfigureAwait(false));
        }
        catch
        {
            from?.Dispose();
            throw;
        }
    }

    /// <summary>Gives back a lane whose page was copied whole; one that failed is disposed instead.</summary>
    public void Return(CopyLane lane)
    {
        lock (idle)
        {
            if (!disposed)
            {
                idle.Add(lane);
                return;
            }
        }

        lane.Dispose(); // a page still in flight when the copy ended
    }

    /// <summary>Closes every idle lane: one of them failed after sitting idle, and the others sat as long.</summary>
    public void CloseIdle()
    {
        while (idle.TryTake(out var lane))
        {
            lane.Dispose();
        }
    }

    public void Dispose()
    {
        lock (idle)
        {
            disposed = true;
        }

        CloseIdle();
    }
}
