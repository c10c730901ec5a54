using RedisHotSwap.Coordinator.Copy;
using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Coordinator.State;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator;

/// <summary>
/// Copy mode's watch on writers that are not instances: their writes are not tracked, and after the switch they would
/// go on writing to SOURCE, where nobody reads any more.
/// </summary>
public sealed partial class MigrationCoordinator
{
    // Keyspace notifications on SOURCE, where it sends them: the keys anyone changed, checked against the instances' marks.
    private KeyspaceWatch? keyspace;

    /// <summary>
    /// Stops while SOURCE has a client that is neither a registered instance, a replica nor a coordinator
    /// (<c>CLIENT LIST</c>, <see cref="UnknownClients"/>), or while SOURCE refuses to list its clients, unless
    /// <see cref="CoordinatorOptions.AllowUnknownClients"/>: then each one is reported and the copy goes on.
    /// </summary>
    private async Task RefuseUnknownWritersAsync(MigrationState state, string when)
    {
        var unknown = await UnknownClients.FindAsync(Source, instances.LiveAsync, options.PollInterval).ConfigureAwait(false);
        if (unknown.Count == 0)
        {
            return;
        }

        if (options.AllowUnknownClients)
        {
            progress?.Report(await StatusAsync($"{when}: going on although (--allow-unknown-clients) {string.Join("; ", unknown)}").ConfigureAwait(false));
            return;
        }

        throw await HaltCopyAsync(state,
            $"Not cutting over ({when}): {string.Join(Environment.NewLine, unknown)}",
            "Nothing was switched: writes go on on SOURCE, every instance still tracks them. A client that is not an instance writes untracked, and after the switch it would write to SOURCE alone.",
            "Stop those clients or set RedisHotSwap:MigrationId on them, then run 'migrate --sync copy' again; or, where SOURCE cannot list its clients, make sure nothing but the instances writes and pass --allow-unknown-clients.").ConfigureAwait(false);
    }

    /// <summary>Starts watching SOURCE's keyspace notifications, once per run; says whether there are any to watch.</summary>
    private async Task WatchKeyspaceAsync()
    {
        if (keyspace is not null)
        {
            return;
        }

        keyspace = new KeyspaceWatch(Source.Connection);
        progress?.Report(await StatusAsync(await keyspace.StartAsync(Source).ConfigureAwait(false)).ConfigureAwait(false));
    }

    /// <summary>
    /// Copies again the keys SOURCE notified as changed that no instance marked: before the fence the expired and
    /// evicted ones (an instance's mark of a write may still be on its way); under it, where every instance has shipped
    /// its marks, also the written ones (by a client that is not an instance), which it reports. Returns the keys it copied.
    /// </summary>
    private async Task<List<(int Database, RedisKey Key)>> CopyUnexplainedAsync(KeyCopier copier, bool fenced)
    {
        if (keyspace is not { Active: true })
        {
            return [];
        }

        if (fenced)
        {
            await keyspace.BarrierAsync().ConfigureAwait(false); // every notification of a write before the fence has arrived
        }

        var (keys, written) = keyspace.Unexplained(written: fenced);
        foreach (var group in keys.GroupBy(k => k.Database))
        {
            foreach (var chunk in group.Select(k => (RedisKey)k.Key).Chunk(ScanCount))
            {
                await copier.CopyAsync(group.Key, chunk).ConfigureAwait(false);
            }
        }

        keyspace.Copied(keys);
        if (written.Count > 0)
        {
            UnexplainedWrites += written.Count;
            progress?.Report(await StatusAsync(
                $"keyspace notifications: {written.Count} keys changed on SOURCE that no instance marked (a writer that is not an instance?), copied again: {string.Join(", ", written.Take(5).Select(k => $"db {k.Database} '{k.Key}'"))}").ConfigureAwait(false));
        }

        return [.. keys.Select(k => (k.Database, (RedisKey)k.Key))];
    }

    // Keys SOURCE's notifications showed written by no instance, over the run: stated with the verification.
    private long UnexplainedWrites { get; set; }
}
