using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Microsoft.FeatureManagement;
using StackExchange.Redis;

namespace RedisHotSwap.Configuration;

/// <summary>
/// Checks <see cref="RedisHotSwapOptions"/>; every failure is one line naming the key and the remedy, with secrets masked.
/// </summary>
/// <remarks>
/// Deliberately not registered into the options pipeline: there a reload with a bad value throws from inside the
/// configuration provider's change callback. The watcher calls it instead, refuses the bad value and keeps the last good one.
/// </remarks>
internal sealed class RedisHotSwapOptionsValidator(IServiceProviderIsService? services = null) : IValidateOptions<RedisHotSwapOptions>
{
    public ValidateOptionsResult Validate(string? name, RedisHotSwapOptions options)
    {
        var failures = new List<string>();
        var source = Parse(options.Source, nameof(RedisHotSwapOptions.Source), failures);
        var target = Parse(options.Target, nameof(RedisHotSwapOptions.Target), failures);

        if (source is not null && target is not null && SameServer(source, target))
        {
            failures.Add($"RedisHotSwap:Source and RedisHotSwap:Target name the same server ({Redaction.Redact(options.Target)}); point Target at the server you are moving to.");
        }

        if (!string.IsNullOrWhiteSpace(options.FeatureFlag) && services is not null && !services.IsService(typeof(IFeatureManager)))
        {
            failures.Add($"RedisHotSwap:FeatureFlag is '{options.FeatureFlag}' but feature management is not registered; call services.AddFeatureManagement() or remove FeatureFlag.");
        }

        if (options.HeartbeatTimeToLive <= options.HeartbeatInterval)
        {
            failures.Add($"RedisHotSwap:HeartbeatTimeToLive ({options.HeartbeatTimeToLive}) must be longer than HeartbeatInterval ({options.HeartbeatInterval}); make it at least three intervals.");
        }

        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true))
        {
            failures.AddRange(results.Select(r => $"RedisHotSwap:{string.Join(",", r.MemberNames)} is out of range: {r.ErrorMessage}"));
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static ConfigurationOptions? Parse(string value, string key, List<string> failures)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            failures.Add($"RedisHotSwap:{key} is empty; set it to a StackExchange.Redis configuration string such as 'host:6379,password=...'.");
            return null;
        }

        if (value.Contains("://", StringComparison.Ordinal))
        {
            failures.Add($"RedisHotSwap:{key} is a URI ({Redaction.Redact(value)}); give it as a StackExchange.Redis configuration string, 'host:6379,password=...'.");
            return null;
        }

        ConfigurationOptions parsed;
        try
        {
            parsed = ConfigurationOptions.Parse(value);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException)
        {
            failures.Add($"RedisHotSwap:{key} is not a valid StackExchange.Redis configuration string ({Redaction.Scrub(ex.Message, value)}); fix it to the form 'host:6379,password=...'.");
            return null;
        }

        if (parsed.EndPoints.Count == 0)
        {
            failures.Add($"RedisHotSwap:{key} names no server ({Redaction.Redact(value)}); add 'host:port' at its start.");
            return null;
        }

        return parsed;
    }

    private static bool SameServer(ConfigurationOptions source, ConfigurationOptions target)
    {
        static HashSet<string> Endpoints(ConfigurationOptions o) =>
            o.EndPoints.Select(e => Normalize(e.ToString() ?? string.Empty)).ToHashSet(StringComparer.OrdinalIgnoreCase);

        return Endpoints(source).Overlaps(Endpoints(target));
    }

    private static string Normalize(string endpoint) =>
        endpoint.Replace("Unspecified/", string.Empty, StringComparison.Ordinal)
            .Replace("localhost:", "127.0.0.1:", StringComparison.OrdinalIgnoreCase);
}
