using System.Globalization;
using RedisHotSwap.Coordinator.Servers;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Safety;

/// <summary>
/// The one way the side giving up the primary role is kept from taking a write its successor never sees: its writes
/// are held (<c>CLIENT PAUSE ... WRITE</c>, bounded), and it is armed to refuse every write the moment its successor
/// stops replicating it (<c>min-replicas-to-write</c> set to the replicas it has, the successor included), so that
/// no instant exists, even if the coordinator dies, in which both sides take writes. Every setting it changes is put
/// back exactly from what <see cref="ReadSettingsAsync"/> returned.
/// </summary>
internal sealed class Fence(RedisNode fenced)
{
    private const string MinReplicas = "min-replicas-to-write";
    private const string MaxLag = "min-replicas-max-lag";

    /// <summary>The fenced side's settings before the fence, to put back.</summary>
    public async Task<FenceSettings> ReadSettingsAsync() => new(
        await fenced.ConfigGetAsync(MinReplicas).ConfigureAwait(false) ?? "0",
        await fenced.ConfigGetAsync(MaxLag).ConfigureAwait(false) ?? "10");

    /// <summary>Arms the fence while the successor still replicates: nothing changes until it leaves. Returns the replicas required.</summary>
    public async Task<int> ArmAsync(FenceSettings before)
    {
        if (before.MaxLag == "0")
        {
            await fenced.ConfigSetAuditedAsync(MaxLag, "10", "0 would switch the fence's replica check off").ConfigureAwait(false);
        }

        var replicas = Math.Max(1, (await fenced.InfoAsync().ConfigureAwait(false)).ConnectedReplicas);
        await fenced.ConfigSetAuditedAsync(MinReplicas, replicas.ToString(CultureInfo.InvariantCulture),
            "arm the fence: refuse every write the moment the successor stops replicating").ConfigureAwait(false);
        return replicas;
    }

    /// <summary>Whether the fence bites now, read back from the server: it requires <paramref name="required"/> replicas and counts fewer good ones.</summary>
    public async Task<bool> BitesAsync(int required)
    {
        var setting = await fenced.ConfigGetAsync(MinReplicas).ConfigureAwait(false);
        var info = await fenced.InfoAsync().ConfigureAwait(false);
        return setting == required.ToString(CultureInfo.InvariantCulture) && info.GoodReplicas < required;
    }

    /// <summary>Holds every write on the fenced side for at most <paramref name="bound"/>; reads pass.</summary>
    public Task PauseAsync(TimeSpan bound) =>
        fenced.ExecuteAuditedAsync("hold writes while the primary role moves", "CLIENT", "PAUSE",
            ((long)Math.Ceiling(bound.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture), "WRITE");

    /// <summary>Lets the held writes go on (they fail if the side was demoted meanwhile). Never throws: a pause ends by itself.</summary>
    public async Task UnpauseQuietlyAsync()
    {
        try
        {
            await fenced.ExecuteAuditedAsync("let the held writes go on", "CLIENT", "UNPAUSE").ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            // The pause ends by itself when its bound passes.
        }
    }

    /// <summary>Puts the settings the fence changed back exactly as they were.</summary>
    public async Task RestoreAsync(FenceSettings before)
    {
        await fenced.ConfigSetAuditedAsync(MinReplicas, before.MinReplicas, "put the fence's setting back").ConfigureAwait(false);
        if (await fenced.ConfigGetAsync(MaxLag).ConfigureAwait(false) != before.MaxLag)
        {
            await fenced.ConfigSetAuditedAsync(MaxLag, before.MaxLag, "put the fence's setting back").ConfigureAwait(false);
        }
    }
}

/// <summary>The fenced side's own settings, kept in the migration's state (no secret in them).</summary>
internal sealed record FenceSettings(string MinReplicas, string MaxLag);
