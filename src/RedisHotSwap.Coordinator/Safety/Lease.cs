using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Safety;

/// <summary>
/// One coordinator at a time per migration: a key (<c>SET NX PX</c>) holding a random token and who holds it, on the
/// side that is the primary of the migration's data (SOURCE, or TARGET once SOURCE replicates it or refuses writes;
/// the key replicates, so after a promotion TARGET already has it). Renewed in the background (compare the token and
/// extend, atomically), released on exit; a killed coordinator's lease expires within <see cref="TimeToLive"/>.
/// </summary>
/// <remarks>
/// The lease has connections of its own: a renewal that waits behind a write pause must never delay the fence's
/// commands. Before the coordinator pauses writes it extends the lease over the pause (<see cref="HoldThroughAsync"/>),
/// since a renewal cannot get through a paused server.
/// </remarks>
internal sealed class Lease : IAsyncDisposable
{
    /// <summary>How long a lease lasts without renewal.</summary>
    public static readonly TimeSpan TimeToLive = TimeSpan.FromSeconds(5);

    // Extends the lease if it is still ours; 2 if it expired (never taken again: another coordinator may have run
    // meanwhile); 0 if another holds it.
    private const string RenewScript = """
        local current = redis.call('GET', KEYS[1])
        if current == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        if not current then return 2 end
        return 0
        """;

    private const string ReleaseScript = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """;

    private static readonly TimeSpan RenewEvery = TimeToLive / 3;

    // How long, and how often, the lease is asked for again while no side takes writes, before the refusal.
    private static readonly TimeSpan RefusalWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RefusalPoll = TimeSpan.FromMilliseconds(100);

    // Taken off every span the server confirmed, so that the lease counts as lost here before its key can expire there
    // (the two clocks' drift, the reply's way back): a fixed part of TimeToLive, so that a long write pause is still
    // covered in full.
    private static readonly TimeSpan Margin = TimeToLive / 10;

    private readonly ConnectionMultiplexer[] connections;
    private readonly string[] names;
    private readonly RedisKey key;
    private readonly string value;
    private readonly string migrationId;
    private readonly CancellationTokenSource stopping = new();
    private readonly Task renewing;
    private readonly TimeProvider time;
    private int node;
    private long validUntil;
    private long holdUntil;
    private volatile string? lost;
    private volatile string? gone; // why its server said it is no longer ours (another holds it, or it expired)
    private string? renewalProblem; // why the last renewal failed, for the message when the lease lapses

    private Lease(ConnectionMultiplexer[] connections, string[] names, int node, RedisKey key, string value, string migrationId, TimeProvider time, long sent)
    {
        this.time = time;
        this.connections = connections;
        this.names = names;
        this.node = node;
        this.key = key;
        this.value = value;
        this.migrationId = migrationId;
        validUntil = ValidUntil(sent, TimeToLive); // from when the SET NX was sent, as a renewal's
        renewing = Task.Run(RenewLoopAsync);
    }

    /// <summary>The side the lease is on now (SOURCE or TARGET).</summary>
    public string HeldOn => names[Volatile.Read(ref node)];

    /// <summary>
    /// Takes the lease for <paramref name="verb"/>, or refuses naming who holds it. A holder on this machine whose
    /// process is gone (a killed coordinator) is waited out, as long as its lease really has left (at most
    /// <paramref name="maxWait"/>, said through <paramref name="notice"/>). When neither side takes a write (the old
    /// primary sealed by a handoff stopped behind its fence, its successor still its replica) and the key is free,
    /// <paramref name="liftStaleSeal"/> may lift the seal once (it says whether it did; it must check it is safe).
    /// </summary>
    /// <exception cref="PreflightRefusedException">Another coordinator holds the lease, or no side takes it.</exception>
    public static async Task<Lease> AcquireAsync(
        RedisNode source, RedisNode target, string migrationId, string verb, TimeProvider time,
        TimeSpan? maxWait = null, Func<Task<bool>>? liftStaleSeal = null, Func<string, Task>? notice = null)
    {
        var connections = new ConnectionMultiplexer[2];
        try
        {
            connections[0] = await ConnectAsync(source).ConfigureAwait(false);
            connections[1] = await ConnectAsync(target).ConfigureAwait(false);
            var holder = new LeaseHolder(Convert.ToHexString(RandomNumberGenerator.GetBytes(16)), Environment.MachineName, Environment.ProcessId, verb, time.GetUtcNow());
            var value = holder.ToJson();
            var key = MigrationKeys.Lease(migrationId);
            var waitedOut = false;
            var lifted = false;
            long? refusedSince = null;
            while (true)
            {
                // The primary of the migration's data first: SOURCE, unless it replicates TARGET (after a handoff) or
                // refuses writes beside a TARGET that is a primary (after a window promotion): its copy of the key can
                // then be neither renewed nor released, and the one that counts, replicated before the promotion, is on TARGET.
                var order = await TargetFirstAsync(source, target).ConfigureAwait(false) ? new[] { 1, 0 } : [0, 1];
                var (taken, on, other, refused, sent) = await TryTakeAsync(connections, order, key, value, time).ConfigureAwait(false);
                if (refused is not null)
                {
                    if (!lifted && liftStaleSeal is not null && await liftStaleSeal().ConfigureAwait(false))
                    {
                        lifted = true;
                        continue;
                    }

                    // A side may refuse for a moment only: a fenced primary whose replica is reconnecting (after a
                    // stall, say) counts it good again within a second or two. Asked again for a while before refusing.
                    refusedSince ??= time.GetTimestamp();
                    if (time.GetElapsedTime(refusedSince.Value) < RefusalWait)
                    {
                        await Task.Delay(RefusalPoll, time).ConfigureAwait(false);
                        continue;
                    }

                    throw new PreflightRefusedException(
                        $"Neither {source.Name} nor {target.Name} takes the lease of migration '{migrationId}' (the last said: {refused}): no side takes writes; check both servers' roles and min-replicas-to-write ('status'), then run this command again.");
                }

                if (taken)
                {
                    var names = new[] { source.Name, target.Name };
                    LeaseHolder.HeldHere[holder.Token] = true;
                    return new Lease(connections, names, on, key, value, migrationId, time, sent);
                }

                var ttl = await connections[on].GetDatabase().KeyTimeToLiveAsync(key).ConfigureAwait(false) ?? TimeSpan.Zero;
                if (other is { } held && !waitedOut && held.Abandoned && ttl <= (maxWait ?? TimeToLive))
                {
                    // Its holder was killed (while it had extended the lease over a write pause, perhaps): wait out what is really left.
                    waitedOut = true;
                    await (notice?.Invoke($"the lease of migration '{migrationId}' is held by a coordinator that is gone ({held.Describe()}); waiting {ttl.TotalSeconds:0.0} s for it to expire") ?? Task.CompletedTask).ConfigureAwait(false);
                    await Task.Delay(ttl + TimeSpan.FromMilliseconds(50), time).ConfigureAwait(false);
                    continue;
                }

                throw new PreflightRefusedException(
                    $"Migration '{migrationId}' is being run by another coordinator: {other?.Describe() ?? "unknown"} (lease on {(on == 0 ? source : target).Name}, {ttl.TotalSeconds:0.0} s left); let it finish or stop it (a stopped coordinator's lease expires by itself in that time, at most {TimeToLive.TotalSeconds:N0} s outside a write pause), then run this command again.");
            }
        }
        catch
        {
            foreach (var connection in connections.OfType<ConnectionMultiplexer>())
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }

            throw;
        }
    }

    /// <summary>
    /// The lease key and this coordinator's value in it, and the side it is on: a state write on that side is made
    /// only while the key still holds the value (in the same transaction).
    /// </summary>
    public (string HeldOn, RedisKey Key, RedisValue Value) Fencing => (HeldOn, key, value);

    /// <summary>Throws if the lease was lost: the coordinator must not change a server any more.</summary>
    /// <exception cref="MigrationHaltedException">Another coordinator holds the lease now, or it could not be renewed in time.</exception>
    public void ThrowIfLost()
    {
        if (lost is null && Expired() is { } expired)
        {
            lost = expired;
        }

        if (lost is { } why)
        {
            throw new MigrationHaltedException(
                LostProblem(why),
                "It stopped before its next change to a server; what it did up to here stands (see 'status').",
                "Make sure no other coordinator runs this migration, then run the same command again.");
        }
    }

    /// <summary>
    /// Asked before an undo (a setting put back, a pause lifted): throws, so that the undo is not sent, once another
    /// coordinator may hold the lease, that is once its server said another holds it or that it expired, or once it
    /// outlived its validity by this coordinator's clock (the server's copy may have expired and been taken since).
    /// A renewal that merely failed (its server out of reach, or refusing writes behind the seal) stops no undo
    /// before then: no other coordinator can hold the lease while the key it last confirmed still lives.
    /// </summary>
    /// <param name="left">What stays as it is without the undo, in words ("SOURCE's write pause as it was ...").</param>
    /// <exception cref="UndoRefusedException">Another coordinator may hold the lease: the undo is its to make.</exception>
    public void ThrowIfNotOursToUndo(string left)
    {
        if ((gone ?? Expired()) is { } why)
        {
            lost ??= why;
            throw new UndoRefusedException(
                left,
                LostProblem(why),
                $"It left {left} and undid nothing more: another coordinator may hold the lease now, and what this run left is that one's to undo.",
                "Run 'status' to see who holds the lease; once no other coordinator runs this migration, run the same command again (it lifts a seal or pause a stopped run left), or 'abort'.");
        }
    }

    /// <summary>
    /// Extends the lease over a write pause of at most <paramref name="bound"/> (plus <see cref="TimeToLive"/>): while
    /// the server holds writes, a renewal waits too. Only an extension the server confirmed holds it: otherwise the
    /// lease counts as lost, before anything is paused.
    /// </summary>
    /// <exception cref="MigrationHaltedException">The lease could not be extended (or was lost).</exception>
    public async Task HoldThroughAsync(TimeSpan bound)
    {
        Volatile.Write(ref holdUntil, time.GetTimestamp() + (long)(bound.TotalSeconds * time.TimestampFrequency));
        if (!await RenewAsync().ConfigureAwait(false))
        {
            lost ??= $"it could not be extended over the write pause ({bound.TotalSeconds:N0} s)";
        }

        ThrowIfLost();
    }

    /// <summary>Stops renewing and deletes the key if it is still ours.</summary>
    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        await renewing.ConfigureAwait(false);
        LeaseHolder.HeldHere.TryRemove(LeaseHolder.FromJson(value)!.Token, out _);
        foreach (var index in new[] { Volatile.Read(ref node), 1 - Volatile.Read(ref node) })
        {
            try
            {
                await ReleaseOnAsync(connections[index].GetDatabase()).ConfigureAwait(false);
                break;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // A replica or a fenced side refuses the DEL: try the other; else the key expires by itself.
            }
        }

        foreach (var connection in connections)
        {
            await connection.DisposeAsync().ConfigureAwait(false);
        }

        stopping.Dispose();
    }

    // Valid here until the server's key could expire: the span it confirmed, from when the command was sent, less the margin.
    private long ValidUntil(long sent, TimeSpan span) => sent + (long)((span - Margin).TotalSeconds * time.TimestampFrequency);

    private string LostProblem(string why) => $"This coordinator lost the lease on migration '{migrationId}': {why}.";

    // Why the lease is no longer valid by this coordinator's clock; null while it is.
    private string? Expired() => time.GetTimestamp() > Volatile.Read(ref validUntil)
        ? $"its lease could not be renewed within {TimeToLive.TotalSeconds:N0} s{(Volatile.Read(ref renewalProblem) is { } problem ? $" ({problem})" : string.Empty)}"
        : null;

    private static async Task<bool> TargetFirstAsync(RedisNode source, RedisNode target)
    {
        var info = await source.InfoAsync("replication").ConfigureAwait(false);
        if (info.IsReplica)
        {
            return true;
        }

        // A SOURCE fenced off beside a TARGET that took over from it (its previous replication id is SOURCE's): the
        // data's primary is TARGET. A TARGET that is merely a primary of its own (before any replication) is not, so a
        // SOURCE that refuses writes for a moment for reasons of its own never sends a second coordinator there.
        if (!(info.ChecksReplicas
            && int.TryParse(await source.ConfigGetAsync("min-replicas-to-write").ConfigureAwait(false), NumberStyles.Integer, CultureInfo.InvariantCulture, out var required)
            && info.GoodReplicas < required))
        {
            return false;
        }

        var successor = await target.InfoAsync("replication").ConfigureAwait(false);
        return !successor.IsReplica && successor.PreviousReplicationId == info.ReplicationId;
    }

    private static async Task<ConnectionMultiplexer> ConnectAsync(RedisNode node)
    {
        var options = node.Options.Clone();
        options.ClientName = ClientNames.Coordinator;
        options.AbortOnConnectFail = true;
        options.AllowAdmin = true; // INFO: a side's own word on its role
        return await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
    }

    // SET NX on the first side that takes writes, and when it was sent; the holder found instead, and on which side,
    // when it is taken; or (with no side) why the last side refused, when none takes writes.
    private static async Task<(bool Taken, int On, LeaseHolder? Holder, string? Refused, long Sent)> TryTakeAsync(ConnectionMultiplexer[] connections, int[] order, RedisKey key, string value, TimeProvider time)
    {
        string? refused = null;
        foreach (var index in order)
        {
            var db = connections[index].GetDatabase();
            var current = await db.StringGetAsync(key).ConfigureAwait(false);
            if (!current.IsNull)
            {
                return (false, index, LeaseHolder.FromJson(current), null, 0);
            }

            try
            {
                var sent = time.GetTimestamp();
                if (await db.StringSetAsync(key, value, TimeToLive, When.NotExists).ConfigureAwait(false))
                {
                    return (true, index, null, null, sent);
                }

                return (false, index, LeaseHolder.FromJson(await db.StringGetAsync(key).ConfigureAwait(false)), null, 0);
            }
            catch (RedisServerException ex) when (IsNotWritable(ex))
            {
                refused = ex.Message; // a replica, or a side fenced off: the primary is the other one
            }
            catch (RedisConnectionException)
            {
                // The client refuses to send a write to a side it knows is a replica; only the side's own word counts.
                if (await RoleAsync(connections[index]).ConfigureAwait(false) != "slave")
                {
                    throw;
                }

                refused = "a replica";
            }
        }

        return (false, -1, null, refused, 0);
    }

    // A replica (READONLY) or a side fenced off (NOREPLICAS): its own answer, never a connection that failed.
    // The release and the renewal are scripts (compare the token, then act, atomically). A server that runs no script
    // (Garnet, by default) gets the same steps one by one, the token read back after: a lease another coordinator
    // took meanwhile is then seen as lost at the next renewal instead of at once.
    private async Task ReleaseOnAsync(IDatabase db)
    {
        try
        {
            await db.ScriptEvaluateAsync(ReleaseScript, [key], [value]).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (!IsNotWritable(ex))
        {
            if (await db.StringGetAsync(key).ConfigureAwait(false) == value)
            {
                await db.KeyDeleteAsync(key).ConfigureAwait(false);
            }
        }
    }

    private async Task<long> RenewOnAsync(IDatabase db, string ms)
    {
        try
        {
            return (long)await db.ScriptEvaluateAsync(RenewScript, [key], [value, ms]).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (!IsNotWritable(ex))
        {
            if (await db.StringGetAsync(key).ConfigureAwait(false) != value)
            {
                return 0;
            }

            await db.KeyExpireAsync(key, TimeSpan.FromMilliseconds(long.Parse(ms, CultureInfo.InvariantCulture))).ConfigureAwait(false);
            return await db.StringGetAsync(key).ConfigureAwait(false) == value ? 1 : 0;
        }
    }

    private static bool IsNotWritable(RedisException ex) =>
        ex is RedisServerException
        && (ex.Message.StartsWith("READONLY", StringComparison.Ordinal) || ex.Message.StartsWith("NOREPLICAS", StringComparison.Ordinal));

    private async Task RenewLoopAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(RenewEvery, stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            _ = await RenewAsync().ConfigureAwait(false);
        }
    }

    // True once the server confirmed the extension.
    private async Task<bool> RenewAsync()
    {
        var sent = time.GetTimestamp();
        var held = Volatile.Read(ref holdUntil) - sent;
        var span = TimeToLive + (held > 0 ? time.GetElapsedTime(0, held) : TimeSpan.Zero);
        var ms = ((long)span.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var index = Volatile.Read(ref node);
            try
            {
                var result = await RenewOnAsync(connections[index].GetDatabase(), ms).ConfigureAwait(false);
                if (result == 0)
                {
                    var other = LeaseHolder.FromJson(await connections[index].GetDatabase().StringGetAsync(key).ConfigureAwait(false));
                    gone ??= $"another coordinator holds it now ({other?.Describe() ?? "unknown"})";
                    lost ??= gone;
                    return false;
                }

                if (result == 2)
                {
                    gone ??= $"it expired before it could be renewed (this coordinator stalled, or {names[index]} was out of reach, for over {TimeToLive.TotalSeconds:N0} s); another coordinator may have run meanwhile";
                    lost ??= gone;
                    return false;
                }

                Volatile.Write(ref validUntil, ValidUntil(sent, span));
                Volatile.Write(ref renewalProblem, null);
                return true;
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                var refused = ex is RedisException redis && IsNotWritable(redis)
                    || (ex is RedisConnectionException && await RoleAsync(connections[index]).ConfigureAwait(false) == "slave");
                Volatile.Write(ref renewalProblem, ex is TimeoutException ? $"{names[index]} did not answer in time"
                    : refused && ex.Message.StartsWith("NOREPLICAS", StringComparison.Ordinal) ? $"{names[index]} refused it behind this coordinator's own seal (NOREPLICAS)"
                    : refused ? $"{names[index]} refused it as a replica"
                    : $"{names[index]} could not be reached");

                // The primary role moved (the key replicated there before it did): follow it only from a side that
                // refuses writes by its own word (the client refuses a known replica's) to one that says it is a
                // primary now; a side merely out of reach is never a reason to move. Else tried again at the next
                // renewal: lost only once it is no longer valid.
                if (attempt > 0 || !refused || !await IsPrimaryAsync(1 - index).ConfigureAwait(false))
                {
                    return false;
                }

                Volatile.Write(ref node, 1 - index);
            }
        }

        return false;
    }

    private async Task<bool> IsPrimaryAsync(int index) => await RoleAsync(connections[index]).ConfigureAwait(false) == "master";

    // The role the side's INFO reports (master or slave); null when it cannot be asked.
    private static async Task<string?> RoleAsync(ConnectionMultiplexer connection)
    {
        try
        {
            var info = (string?)await connection.GetDatabase().ExecuteAsync("INFO", "replication").ConfigureAwait(false);
            return info?.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("role:", StringComparison.Ordinal))?["role:".Length..];
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return null;
        }
    }
}

/// <summary>Who holds a migration's lease: kept as JSON in the lease key (the token makes the value unique).</summary>
internal sealed record LeaseHolder(string Token, string Host, int ProcessId, string Verb, DateTimeOffset Since)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The tokens of the leases this process holds now.</summary>
    internal static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> HeldHere = new(StringComparer.Ordinal);

    /// <summary>
    /// A holder on this machine whose process is gone (a coordinator killed before it could release the lease), or
    /// this process when no coordinator in it holds that lease any more (one disposed where its release was refused).
    /// </summary>
    public bool Abandoned => string.Equals(Host, Environment.MachineName, StringComparison.OrdinalIgnoreCase)
        && (ProcessId == Environment.ProcessId ? !HeldHere.ContainsKey(Token) : !IsRunning(ProcessId));

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static LeaseHolder? FromJson(RedisValue value)
    {
        try
        {
            return value.IsNullOrEmpty ? null : JsonSerializer.Deserialize<LeaseHolder>((string)value!, Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>For an operator: the verb, where it runs and since when.</summary>
    public string Describe() =>
        $"'{Verb}' on host {Host}, pid {ProcessId.ToString(CultureInfo.InvariantCulture)}, since {Since.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)}";

    private static bool IsRunning(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
