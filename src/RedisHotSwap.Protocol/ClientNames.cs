using System.Text;

namespace RedisHotSwap.Protocol;

/// <summary>
/// The names (<c>CLIENT SETNAME</c>) under which application instances and the coordinator connect, so that the
/// coordinator can tell them apart from every other client of a server (<c>CLIENT LIST</c>) before a promotion.
/// </summary>
internal static class ClientNames
{
    /// <summary>What an application instance's connections are named after: <c>redis-hotswap/{application}/{instanceId}</c>.</summary>
    public const string InstancePrefix = "redis-hotswap/";

    /// <summary>What the coordinator's own connections are named after.</summary>
    public const string CoordinatorPrefix = "redis-hotswap-coordinator/";

    /// <summary>The name of this process's coordinator connections.</summary>
    public static string Coordinator { get; } = Clean($"{CoordinatorPrefix}{Environment.MachineName}:{Environment.ProcessId}");

    /// <summary>The name of an application instance's connections (both sides, pub/sub included).</summary>
    public static string Instance(string application, string instanceId) => Clean($"{InstancePrefix}{application}/{instanceId}");

    /// <summary>The instance id a connection name carries, as <see cref="Instance"/> wrote it; null for any other name.</summary>
    public static string? InstanceIdOf(string? name) =>
        name is not null && name.StartsWith(InstancePrefix, StringComparison.Ordinal) && name.LastIndexOf('/') is var slash && slash >= InstancePrefix.Length
            ? name[(slash + 1)..]
            : null;

    /// <summary>Whether a connection name is a coordinator's.</summary>
    public static bool IsCoordinator(string? name) => name?.StartsWith(CoordinatorPrefix, StringComparison.Ordinal) == true;

    /// <summary>An instance id as it appears in a connection name (a name allows no spaces or control characters).</summary>
    public static string Clean(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text)
        {
            builder.Append(c is > ' ' and < '\u007f' ? c : '_');
        }

        return builder.ToString();
    }
}
