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

        foreach (Match match in SecretPattern().Matches(configuration))
        {
            var secret = match.Groups["value"].Value;
            if (secret.Length > 0)
            {
                text = text.Replace(secret, Mask, StringComparison.Ordinal);
            }
        }

        return text;
    }

    [GeneratedRegex(@"(?<key>(?:sentinel)?password)\s*=\s*(?<value>[^,]*)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretPattern();
}
