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
    int Version = MigrationKeys.Version)
{
    /// <summary>The report as stored.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ProtocolJson.Default.InstanceReport);

    /// <summary>Reads a stored report; null when it is not one.</summary>
    public static InstanceReport? FromJson(string? json) => ProtocolJson.TryRead(json, ProtocolJson.Default.InstanceReport);
}

/// <summary>The coordinator's instruction to every instance of a migration: use <paramref name="Side"/>, whatever the configuration says.</summary>
/// <param name="Side">The side every instance must use.</param>
/// <param name="Reason">Why, for the instances' logs (for example "migration aborted").</param>
/// <param name="IssuedAt">When the coordinator issued it.</param>
/// <param name="Promoted">TARGET is a primary now: an instance connected to it as to a writable replica reconnects plainly.</param>
/// <param name="Version">The protocol version, <see cref="MigrationKeys.Version"/>.</param>
internal sealed record Directive(RedisSide Side, string Reason, DateTimeOffset IssuedAt, bool Promoted = false, int Version = MigrationKeys.Version)
{
    /// <summary>The directive as stored and published.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ProtocolJson.Default.Directive);

    /// <summary>Reads a stored directive; null when it is not one.</summary>
    public static Directive? FromJson(string? json) => ProtocolJson.TryRead(json, ProtocolJson.Default.Directive);
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
