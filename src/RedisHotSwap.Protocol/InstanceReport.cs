using System.Text.Json;
using System.Text.Json.Serialization;

namespace RedisHotSwap.Protocol;

/// <summary>What an application instance says about itself at every heartbeat.</summary>
/// <param name="InstanceId">Unique per process: host, process id and a random suffix.</param>
/// <param name="Host">The machine name.</param>
/// <param name="ProcessId">The operating-system process id.</param>
/// <param name="Application">The entry assembly's name.</param>
/// <param name="Side">The side its traffic goes to.</param>
/// <param name="MigrationId">The migration it takes part in.</param>
/// <param name="Generation">How many switches it has applied.</param>
/// <param name="Sequence">Increases with every report; of two copies (one per server) the higher wins.</param>
/// <param name="ReportedAt">When it reported, by its own clock.</param>
/// <param name="Draining">
/// Whether its previous connection is still finishing commands: until it has, the side it left may yet receive
/// writes, so the coordinator does not count it as moved.
/// </param>
/// <param name="Version">The protocol version, <see cref="MigrationKeys.Version"/>.</param>
/// <param name="Armed">The side this instance holds a warm connection to, ready for a handoff; null when none.</param>
/// <param name="ArmedUnder">The epoch of the directive it is armed under; null when not armed (or an older version).</param>
/// <param name="SwitchedAt">When its last switch swapped traffic (its own clock); null before the first.</param>
/// <param name="Tracking">Copy mode: the epoch of the directive under which it tracks every write it makes (see <see cref="CopyStage"/>); null when it does not.</param>
/// <param name="Fenced">Copy mode: the epoch of the fence directive under which it holds its writes, every earlier write acknowledged and marked; null when it does not.</param>
internal sealed record InstanceReport(
    string InstanceId,
    string Host,
    int ProcessId,
    string Application,
    RedisSide Side,
    string MigrationId,
    long Generation,
    long Sequence,
    DateTimeOffset ReportedAt,
    bool Draining = false,
    int Version = MigrationKeys.Version,
    RedisSide? Armed = null,
    DateTimeOffset? SwitchedAt = null,
    long? Tracking = null,
    long? Fenced = null,
    long? ArmedUnder = null)
{
    /// <summary>The report as stored.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ProtocolJson.Default.InstanceReport);

    /// <summary>Reads a stored report; null when it is not one.</summary>
    public static InstanceReport? FromJson(string? json) => ProtocolJson.TryRead(json, ProtocolJson.Default.InstanceReport);

    /// <summary>
    /// Why the coordinator cannot count on what this report says (another protocol version, another migration, a side
    /// it does not know); null when it can. Such an instance is live, so it is waited for, never counted as done.
    /// </summary>
    [JsonIgnore]
    public string? Problem => this switch
    {
        { Version: not MigrationKeys.Version } => $"speaks protocol version {Version}, not {MigrationKeys.Version}: run the same RedisHotSwap version in the applications and the tool",
        _ when !Enum.IsDefined(Side) || Armed is { } armed && !Enum.IsDefined(armed) => "reports a side this version does not know",
        _ => null,
    };
}

/// <summary>
/// The coordinator's instruction to every instance of a migration: send traffic to <paramref name="Side"/>, whatever
/// the configuration says, and keep a warm connection to <paramref name="Arm"/> for a handoff.
/// </summary>
/// <param name="Side">The side every instance must use.</param>
/// <param name="Reason">Why, for the instances' logs (for example "migration aborted").</param>
/// <param name="IssuedAt">When the coordinator issued it.</param>
/// <param name="Promoted">The side named is a primary now: an instance connected to it as to a writable replica reconnects plainly.</param>
/// <param name="Version">The protocol version, <see cref="MigrationKeys.Version"/>.</param>
/// <param name="MigrationId">The migration it belongs to; an instance of another migration ignores it.</param>
/// <param name="Epoch">
/// Increases with every directive of the migration; an instance never goes back to an older one, so a replayed
/// message or a stale copy of the key changes nothing.
/// </param>
/// <param name="Arm">A side to connect to ahead of a handoff (warm, subscribed, no traffic); null for none.</param>
/// <param name="Copy">Copy mode: what the instances do with their writes meanwhile (<see cref="CopyStage"/>); null outside a copy.</param>
internal sealed record Directive(
    RedisSide Side,
    string Reason,
    DateTimeOffset IssuedAt,
    bool Promoted = false,
    int Version = MigrationKeys.Version,
    string? MigrationId = null,
    long Epoch = 0,
    RedisSide? Arm = null,
    CopyStage? Copy = null)
{
    /// <summary>The directive as stored and published.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ProtocolJson.Default.Directive);

    /// <summary>Reads a stored directive; null when it is not one (see <see cref="Read"/> for why).</summary>
    public static Directive? FromJson(string? json) => ProtocolJson.TryRead(json, ProtocolJson.Default.Directive);

    /// <summary>
    /// Reads a directive for <paramref name="migrationId"/> and checks everything an instance relies on: the
    /// protocol version, the migration id, and sides that exist.
    /// </summary>
    /// <param name="json">The key's value or a message; null or empty when there is none.</param>
    /// <param name="migrationId">The migration the instance takes part in.</param>
    /// <param name="problem">Why a non-empty value was refused; null when it was accepted or absent.</param>
    /// <returns>The directive, or null when there is none or it was refused.</returns>
    public static Directive? Read(string? json, string migrationId, out string? problem)
    {
        problem = null;
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }

        var directive = FromJson(json);
        problem = directive switch
        {
            null => "it is not a directive (unreadable JSON)",
            { Version: not MigrationKeys.Version } => $"its protocol version {directive.Version} is not {MigrationKeys.Version}",
            _ when !string.Equals(directive.MigrationId, migrationId, StringComparison.Ordinal) => "it names another migration",
            _ when !Enum.IsDefined(directive.Side) => "it names no known side",
            { Arm: { } arm } when !Enum.IsDefined(arm) || arm == directive.Side => "it arms no known other side",
            { Epoch: < 1 } => "it has no epoch",
            { Copy: { } stage } when !Enum.IsDefined(stage) || directive.Side != RedisSide.Source || directive.Arm != RedisSide.Target => "it names no known copy stage for traffic on SOURCE",
            _ => null,
        };
        return problem is null && directive is not null ? directive with { Reason = directive.Reason ?? string.Empty } : null;
    }
}

/// <summary>
/// What the instances of a copy migration (<c>--sync copy</c>) do with their writes while their traffic stays on
/// SOURCE. The order is the order of the procedure.
/// </summary>
internal enum CopyStage
{
    /// <summary>Record the keys of every write, once acknowledged, in TARGET's dirty sets; the backfill has not begun.</summary>
    Track = 1,

    /// <summary>As <see cref="Track"/>, while the backfill runs: an instance that starts tracking only now may have written untracked, and says so.</summary>
    Copying = 2,

    /// <summary>Hold every new command, let the ones in flight finish, ship their marks, and report fenced; released by a switch (to TARGET) or by a directive without a fence (on SOURCE).</summary>
    Fence = 3,
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true)]
[JsonSerializable(typeof(InstanceReport))]
[JsonSerializable(typeof(Directive))]
internal sealed partial class ProtocolJson : JsonSerializerContext
{
    public static T? TryRead<T>(string? json, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(json, type);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}
