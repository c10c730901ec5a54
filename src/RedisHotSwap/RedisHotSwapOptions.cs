using System.ComponentModel.DataAnnotations;
using RedisHotSwap.Configuration;
using StackExchange.Redis;

namespace RedisHotSwap;

/// <summary>
/// Where an application's Redis traffic goes, and what moves it. Bound from configuration through
/// <c>IOptionsMonitor</c>, so a reload takes effect while the application runs.
/// </summary>
public sealed class RedisHotSwapOptions
{
    /// <summary>The StackExchange.Redis configuration string of the server used before the migration.</summary>
    /// <value>Required, for example <c>redis-old:6379,password=...</c>.</value>
    public string Source { get; set; } = string.Empty;

    /// <summary>The StackExchange.Redis configuration string of the server to move to.</summary>
    /// <value>Required, for example <c>redis-new:6379,password=...,ssl=true</c>.</value>
    public string Target { get; set; } = string.Empty;

    /// <summary>Moves this instance to <see cref="Target"/> when true. Ignored when <see cref="FeatureFlag"/> is set.</summary>
    /// <value>The default value is <see langword="false"/>.</value>
    public bool UseTarget { get; set; }

    /// <summary>
    /// The name of a Microsoft.FeatureManagement flag that decides the side: on means <see cref="Target"/>.
    /// Requires <c>services.AddFeatureManagement()</c>.
    /// </summary>
    /// <value>The default value is <see langword="null"/>: <see cref="UseTarget"/> decides.</value>
    public string? FeatureFlag { get; set; }

    /// <summary>Names the migration this instance takes part in, for the coordinator.</summary>
    /// <value>The default value is <see langword="null"/>.</value>
    [RegularExpression(Protocol.MigrationKeys.IdPattern, ErrorMessage = Protocol.MigrationKeys.IdRule)]
    public string? MigrationId { get; set; }

    /// <summary>How often the feature flag is evaluated again, for flags whose filters change without a configuration reload.</summary>
    /// <value>The default value is 1 second.</value>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan FeatureFlagPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a retired connection may take to finish the commands it has in flight before it is closed.</summary>
    /// <value>The default value is 10 seconds.</value>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long to wait before trying again when a switch failed (for example, the new server did not answer).</summary>
    /// <value>The default value is 5 seconds.</value>
    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00")]
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Lets this instance write to <see cref="Target"/> while it is still a replica with <c>replica-read-only no</c>,
    /// which StackExchange.Redis refuses on its own. See the README's "Writing to a replica" section.
    /// </summary>
    /// <value>The default value is <see langword="true"/>.</value>
    public bool AllowWritesToReplica { get; set; } = true;

    /// <summary>How often this instance reports its side to the coordinator, when <see cref="MigrationId"/> is set.</summary>
    /// <value>The default value is 1 second.</value>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a report lives; an instance silent for longer is taken for dead.</summary>
    /// <value>The default value is 5 seconds.</value>
    [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")]
    public TimeSpan HeartbeatTimeToLive { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Shapes a side's <see cref="ConfigurationOptions"/> after its configuration string is parsed, on every connect
    /// (at start, on each switch, on a reconnect after promotion): what a configuration string cannot carry, such as
    /// TLS certificate selection and validation callbacks, <see cref="ConfigurationOptions.BacklogPolicy"/>,
    /// <see cref="ConfigurationOptions.LoggerFactory"/>, a <see cref="ConfigurationOptions.SocketManager"/> or a
    /// <see cref="ConfigurationOptions.Tunnel"/>. Set it in code (it is not read from configuration); it is called with
    /// the side being connected. The command map is replaced while writing to a replica (see the README).
    /// </summary>
    /// <value>The default value is <see langword="null"/>: the configuration string alone.</value>
    public Action<RedisSide, ConfigurationOptions>? ConfigureConnection { get; set; }

    /// <summary>The configuration string of <paramref name="side"/>.</summary>
    public string ConfigurationFor(RedisSide side) => side == RedisSide.Target ? Target : Source;

    /// <inheritdoc/>
    public override string ToString() =>
        $"Source={Redaction.Redact(Source)}; Target={Redaction.Redact(Target)}; UseTarget={UseTarget}; FeatureFlag={FeatureFlag}; MigrationId={MigrationId}";

}
