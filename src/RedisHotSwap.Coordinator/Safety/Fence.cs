using System.Diagnostics;
using System.Globalization;
using RedisHotSwap.Coordinator.Servers;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Safety;

/// <summary>
/// The one way the side giving up the primary role is kept from taking a write its successor never sees: its writes
/// are held (<c>CLIENT PAUSE ... WRITE</c>, bounded), and it is armed (window cutover) or sealed (handoff) to refuse
/// writes through <c>min-replicas-to-write</c>, so that no instant exists, even if the coordinator dies or the pause
/// lapses, in which both sides take writes. Every setting it changes is put back exactly from what
/// <see cref="ReadSettingsAsync"/> returned.
/// </summary>
internal sealed class Fence(RedisNode fenced)
{
    private const string MinReplicas = "min-replicas-to-write";
    private const string MaxLag = "min-replicas-max-lag";

    private long started;
    private long stopped;
    private string? sealValue;

    /// <summary>How long writes were held (from <see cref="Start"/> to <see cref="Stop"/>, or until now).</summary>
    public TimeSpan Held => stopped == 0 ? Stopwatch.GetElapsedTime(started) : Stopwatch.GetElapsedTime(started, stopped);

    /// <summary>Why the fence could not let the promotion happen, in one line; null when nothing went wrong.</summary>
    public string? Problem { get; private set; }

    /// <summary>When the successor was promoted (the coordinator's clock); null before.</summary>
    public DateTimeOffset? PromotedAt { get; set; }

    public void Start() => started = Stopwatch.GetTimestamp();

    public void Stop() => stopped = Stopwatch.GetTimestamp();

    public void Fail(string problem) => Problem ??= problem;

    /// <summary>The fenced side's settings before the fence, to put back.</summary>
    public async Task<FenceSettings> ReadSettingsAsync() => new(
        await fenced.ConfigGetAsync(MinReplicas).ConfigureAwait(false) ?? "0",
        await fenced.ConfigGetAsync(MaxLag).ConfigureAwait(false) ?? "10");

    /// <summary>
    /// Whether the fenced side has replicas and would count every one toward <c>min-replicas-to-write</c> now: online
    /// and acknowledged within the last second (after an initial sync a replica counts only from its first acknowledgement).
    /// </summary>
    public async Task<bool> ReplicasOnlineAsync()
    {
        var info = await fenced.InfoAsync("replication").ConfigureAwait(false);
        return info.ConnectedReplicas > 0 && info.Replicas.All(r => r.State == "online" && r.Lag <= 1);
    }

    /// <summary>Arms the fence while the successor still replicates: nothing changes until it leaves. Returns the replicas required.</summary>
    public async Task<int> ArmAsync(FenceSettings before)
    {
        await KeepReplicaCheckOnAsync(before).ConfigureAwait(false);
        var replicas = Math.Max(1, (await fenced.InfoAsync().ConfigureAwait(false)).ConnectedReplicas);
        await fenced.ConfigSetAuditedAsync(MinReplicas, replicas.ToString(CultureInfo.InvariantCulture),
            "arm the fence: refuse every write the moment the successor stops replicating").ConfigureAwait(false);
        return replicas;
    }

    /// <summary>What the seal needs, read and set before the pause so that nothing of it waits behind the pause.</summary>
    public async Task PrepareSealAsync(FenceSettings before)
    {
        await KeepReplicaCheckOnAsync(before).ConfigureAwait(false);
        sealValue = ((await fenced.InfoAsync("replication").ConfigureAwait(false)).ConnectedReplicas + 1).ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Seals the fenced side: from now on it refuses every write (it requires one replica more than it has), whatever
    /// becomes of the pause. Returns its replication offset as the seal took effect: nothing enters the stream after;
    /// null when the seal does not bite (a replica that connected since it was prepared makes up the count).
    /// </summary>
    public async Task<long?> SealAsync()
    {
        var required = sealValue ?? throw new InvalidOperationException("Prepare the seal first.");
        var seal = fenced.ConfigSetAuditedAsync(MinReplicas, required, "seal: refuse every write from now on, whatever becomes of the pause");
        var info = fenced.InfoAsync("replication"); // pipelined behind the seal: the offset as it took effect, and whether it bites
        await seal.ConfigureAwait(false);
        var sealedAt = await info.ConfigureAwait(false);
        if (sealedAt.GoodReplicas >= int.Parse(required, CultureInfo.InvariantCulture))
        {
            Fail($"{fenced.Name}'s seal does not bite: {sealedAt.GoodReplicas} replicas count toward min-replicas-to-write {required} (one connected while the handoff began).");
            return null;
        }

        return sealedAt.MasterOffset;
    }

    /// <summary>
    /// Waits until <paramref name="successor"/> has processed the fenced side's stream up to <paramref name="offset"/>,
    /// within <paramref name="bound"/> of <see cref="Start"/>; a successor that does not answer meanwhile (stalled, its
    /// link down) fails it at the bound too, not after the client's command timeout, while writes wait.
    /// </summary>
    public async Task<bool> CaughtUpAsync(RedisNode successor, long offset, TimeSpan bound, CancellationToken cancellationToken)
    {
        try
        {
            do
            {
                var info = await WithinAsync(successor.InfoAsync("replication"), bound, cancellationToken).ConfigureAwait(false);
                if (info.ReplicaOffset >= offset)
                {
                    return true;
                }
            }
            while (Held <= bound);
        }
        catch (TimeoutException)
        {
            // No answer within the bound.
        }

        Fail($"{successor.Name} did not take the last of {fenced.Name}'s stream within {bound.TotalMilliseconds:N0} ms.");
        return false;
    }

    /// <summary>
    /// <paramref name="step"/>, sent behind the pause, bounded by what is left of <paramref name="bound"/> since
    /// <see cref="Start"/>: a server that does not answer fails it (<see cref="TimeoutException"/>) at the bound, not
    /// after the client's command timeout, while writes wait and the lease runs out.
    /// </summary>
    public Task<T> WithinAsync<T>(Task<T> step, TimeSpan bound, CancellationToken cancellationToken) =>
        Observed(step).WaitAsync(Left(bound), cancellationToken);

    /// <inheritdoc cref="WithinAsync{T}(Task{T}, TimeSpan, CancellationToken)"/>
    public Task WithinAsync(Task step, TimeSpan bound, CancellationToken cancellationToken) =>
        Observed(step).WaitAsync(Left(bound), cancellationToken);

    /// <summary>Whether the fence bites now, read back from the server: it requires <paramref name="required"/> replicas and counts fewer good ones.</summary>
    public async Task<bool> BitesAsync(int required)
    {
        var setting = await fenced.ConfigGetAsync(MinReplicas).ConfigureAwait(false);
        var info = await fenced.InfoAsync().ConfigureAwait(false);
        return setting == required.ToString(CultureInfo.InvariantCulture) && info.GoodReplicas < required;
    }

    /// <summary>
    /// After a promotion: makes the fenced side refuse every write for good, on every path that records one (first
    /// run or resumed): it requires one replica more than it counts now (never fewer than it required), read back, and
    /// persisted in its configuration file where it has one. False when the setting does not bite.
    /// </summary>
    public async Task<bool> SecureAsync()
    {
        var maxLag = await fenced.ConfigGetAsync(MaxLag).ConfigureAwait(false) ?? "10";
        await KeepReplicaCheckOnAsync(new FenceSettings("0", maxLag)).ConfigureAwait(false);
        var current = int.TryParse(await fenced.ConfigGetAsync(MinReplicas).ConfigureAwait(false), CultureInfo.InvariantCulture, out var n) ? n : 0;
        var required = Math.Max(current, (await fenced.InfoAsync("replication").ConfigureAwait(false)).ConnectedReplicas + 1);
        if (required != current)
        {
            await fenced.ConfigSetAuditedAsync(MinReplicas, required.ToString(CultureInfo.InvariantCulture),
                "the promoted side's predecessor refuses every write for good").ConfigureAwait(false);
        }

        if (!await BitesAsync(required).ConfigureAwait(false))
        {
            return false;
        }

        await fenced.RewriteConfigAsync("so that a restart keeps the old primary refusing writes").ConfigureAwait(false);
        return true;
    }

    /// <summary>Holds every write on the fenced side for at most <paramref name="bound"/> (reads pass); returns its replication offset once held.</summary>
    public async Task<long> PauseAsync(TimeSpan bound)
    {
        var pause = fenced.ExecuteAuditedAsync("hold writes while the primary role moves", "CLIENT", "PAUSE",
            ((long)Math.Ceiling(bound.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture), "WRITE");
        var info = fenced.InfoAsync("replication"); // pipelined behind the pause: the offset it holds still
        await pause.ConfigureAwait(false);
        return (await info.ConfigureAwait(false)).MasterOffset;
    }

    /// <summary>
    /// Lets the held writes go on (they fail if the side was demoted meanwhile). Quiet about the server (a pause ends
    /// by itself); throws only when the lease is another coordinator's to hold now, whose pause this would lift.
    /// </summary>
    public async Task UnpauseQuietlyAsync()
    {
        try
        {
            await fenced.ExecuteUndoAuditedAsync($"{fenced.Name}'s write pause as it was (not lifted: it lapses by itself)", "let the held writes go on", "CLIENT", "UNPAUSE").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The pause ends by itself when its bound passes.
        }
    }

    /// <summary>
    /// Puts the settings the fence changed back exactly as they were: an undo, which a failed renewal does not stop,
    /// but which is not made once another coordinator may hold the lease (its own fence may stand there now).
    /// </summary>
    public async Task RestoreAsync(FenceSettings before)
    {
        if (await fenced.ConfigGetAsync(MinReplicas).ConfigureAwait(false) != before.MinReplicas)
        {
            await fenced.ConfigSetAuditedAsync(MinReplicas, before.MinReplicas, "put the fence's setting back", undo: true).ConfigureAwait(false);
        }

        if (await fenced.ConfigGetAsync(MaxLag).ConfigureAwait(false) != before.MaxLag)
        {
            await fenced.ConfigSetAuditedAsync(MaxLag, before.MaxLag, "put the fence's setting back", undo: true).ConfigureAwait(false);
        }
    }

    private TimeSpan Left(TimeSpan bound) => bound - Held is var left && left > TimeSpan.Zero ? left : TimeSpan.Zero;

    // A step given up at its bound may still fail later: its exception is observed, never left to the finalizer.
    private static T Observed<T>(T step)
        where T : Task
    {
        _ = step.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return step;
    }

    private async Task KeepReplicaCheckOnAsync(FenceSettings before)
    {
        if (before.MaxLag == "0")
        {
            await fenced.ConfigSetAuditedAsync(MaxLag, "10", "0 would switch the fence's replica check off").ConfigureAwait(false);
        }
    }
}

/// <summary>The fenced side's own settings, kept in the migration's state (no secret in them).</summary>
internal sealed record FenceSettings(string MinReplicas, string MaxLag);
