using System.Text.RegularExpressions;
using StackExchange.Redis;

namespace RedisHotSwap.Configuration;

/// <summary>The one place that turns a configuration string into text fit for logs, exceptions and output.</summary>
internal static partial class Redaction
{
    private const string Mask = "*****";

    /// <summary>The configuration string with every secret masked; never throws.</summary>
    public static string Redact(string? configuration)
    {
        if (string.IsNullOrWhiteSpace(configuration))
        {
            return "(empty)";
        }

        if (configuration.Contains("://", StringComparison.Ordinal))
        {
            // A URI (redis://user:password@host) is no configuration string: its user information is masked whole.
            return SecretPattern().Replace(UriUserInfo().Replace(configuration, m => m.Groups["scheme"].Value + Mask + "@"), m => m.Groups["key"].Value + "=" + Mask);
        }

        try
        {
            return ConfigurationOptions.Parse(configuration).ToString(includePassword: false);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException)
        {
            return SecretPattern().Replace(configuration, m => m.Groups["key"].Value + "=" + Mask);
        }
    }

    /// <summary>Only the servers a configuration string names (<c>host:port,host:port</c>), for short messages; never throws.</summary>
    public static string Endpoints(string? configuration)
    {
        if (configuration?.Contains("://", StringComparison.Ordinal) == true)
        {
            return Redact(configuration);
        }

        try
        {
            var endpoints = ConfigurationOptions.Parse(configuration ?? string.Empty).EndPoints;
            return endpoints.Count == 0 ? "(no server)" : string.Join(",", endpoints.Select(EndPointCollection.ToString));
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or NotSupportedException)
        {
            return Redact(configuration);
        }
    }

    /// <summary><paramref name="text"/> with any secret of <paramref name="configuration"/> masked.</summary>
    public static string Scrub(string text, string? configuration)
    {
        if (string.IsNullOrEmpty(configuration))
        {
            return text;
        }

        var secrets = SecretPattern().Matches(configuration).Select(m => m.Groups["value"].Value)
            .Concat(UriUserInfo().Matches(configuration).Select(m => m.Groups["userinfo"].Value))
            .Concat(UriUserInfo().Matches(configuration).Select(m => m.Groups["userinfo"].Value.Split(':', 2)[^1]));
        foreach (var secret in secrets.Where(s => s.Length > 0).OrderByDescending(s => s.Length))
        {
            text = text.Replace(secret, Mask, StringComparison.Ordinal);
        }

        return text;
    }

    [GeneratedRegex(@"(?<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?<userinfo>[^@/\s]*)@", RegexOptions.CultureInvariant)]
    private static partial Regex UriUserInfo();

    [GeneratedRegex(@"(?<key>(?:sentinel)?password)\s*=\s*(?<value>[^,]*)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretPattern();
}
