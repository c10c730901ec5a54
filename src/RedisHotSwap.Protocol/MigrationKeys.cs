using StackExchange.Redis;

namespace RedisHotSwap.Protocol;

/// <summary>
/// The keys and channel that application instances and the coordinator share for one migration. They live in
/// database 0 of the servers being migrated, so they replicate with the data; every name starts with
/// <see cref="Prefix"/>. They stay after promotion (the directive keeps instances on TARGET) until applications drop
/// <c>MigrationId</c> from their configuration; then <c>__redis-hotswap:{id}:*</c> can be deleted.
/// </summary>
/// <remarks>This class and the message types beside it are the whole protocol; version it through <see cref="Version"/>.</remarks>
internal static class MigrationKeys
{
    /// <summary>The protocol version written into every message.</summary>
    public const int Version = 2;

    /// <summary>What a migration id may be: 1 to 64 letters, digits, '.', '_' or '-' (it is part of every key name).</summary>
    public const string IdPattern = "^[A-Za-z0-9._-]{1,64}$";

    /// <summary>Why an id that does not match <see cref="IdPattern"/> is refused, and what to do.</summary>
    public const string IdRule = "must be 1 to 64 letters, digits, '.', '_' or '-'; choose a shorter, plainer id.";

    /// <summary>What every key and channel name starts with.</summary>
    public const string Prefix = "__redis-hotswap:";

    /// <summary>The set of instance ids that have reported for <paramref name="migrationId"/>.</summary>
    public static RedisKey Instances(string migrationId) => $"{Prefix}{migrationId}:instances";

    /// <summary>
    /// One instance's latest report (JSON <see cref="InstanceReport"/>, with a time-to-live) as written to the server it
    /// uses on <paramref name="side"/>. One key per side: the expiry of the copy on the side it left, replicated as a
    /// deletion, never removes the report it writes now.
    /// </summary>
    public static RedisKey Instance(string migrationId, string instanceId, RedisSide side) =>
        $"{Prefix}{migrationId}:instance:{instanceId}:{(side == RedisSide.Source ? "source" : "target")}";

    /// <summary>The coordinator's state of the migration (a hash, see <c>MigrationState</c> in the coordinator).</summary>
    public static RedisKey State(string migrationId) => $"{Prefix}{migrationId}:state";

    /// <summary>Which coordinator runs the migration now (JSON: a random token, host, pid, verb, since; a time-to-live, renewed while it runs).</summary>
    public static RedisKey Lease(string migrationId) => $"{Prefix}{migrationId}:lease";

    /// <summary>A counter the coordinator increments for every directive it issues (<see cref="Protocol.Directive.Epoch"/>).</summary>
    public static RedisKey Epoch(string migrationId) => $"{Prefix}{migrationId}:epoch";

    /// <summary>The coordinator's directive to every instance (JSON <see cref="Directive"/>), when it has one.</summary>
    public static RedisKey Directive(string migrationId) => $"{Prefix}{migrationId}:directive";

    /// <summary>Where the coordinator publishes a new directive, so instances act on it at once.</summary>
    public static RedisChannel DirectiveChannel(string migrationId) => RedisChannel.Literal($"{Prefix}{migrationId}:directive");

    /// <summary>
    /// Copy mode: the keys of database <paramref name="database"/> that instances wrote since the coordinator last took
    /// the set (a set on TARGET, members the keys' bytes). The braces keep a migration's copy keys in one cluster slot.
    /// </summary>
    public static RedisKey Dirty(string migrationId, int database) => $"{Prefix}{{{migrationId}}}:dirty:{database}";

    /// <summary>Copy mode: the dirty set the coordinator took and is copying (renamed from <see cref="Dirty"/>; kept until copied, so a killed coordinator loses none).</summary>
    public static RedisKey DirtyTaken(string migrationId, int database) => $"{Prefix}{{{migrationId}}}:dirty-taken:{database}";

    /// <summary>
    /// Copy mode: a counter of writes whose keys an instance could not name (a command or script without declared keys,
    /// an instance that began tracking after the backfill began); any makes the coordinator copy every key again.
    /// </summary>
    public static RedisKey DirtyUnknown(string migrationId) => $"{Prefix}{{{migrationId}}}:dirty-unknown";

    /// <summary>
    /// The writable window: the instances (a set of instance ids, on TARGET) that may have written TARGET without
    /// having shipped every mark yet. An instance adds itself before its first command on TARGET and removes itself
    /// only once its last marks are shipped; one left here (killed, or TARGET stalled as it left) means the marks may
    /// be incomplete, and <c>abort</c> says its count may be low.
    /// </summary>
    public static RedisKey WindowWriters(string migrationId) => $"{Prefix}{{{migrationId}}}:window-writers";

    /// <summary>Whether <paramref name="key"/> belongs to the protocol rather than to the application.</summary>
    public static bool IsProtocolKey(RedisKey key) => ((string?)key)?.StartsWith(Prefix, StringComparison.Ordinal) == true;
}
