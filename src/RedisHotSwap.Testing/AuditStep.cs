using System.Text.RegularExpressions;

namespace RedisHotSwap.Testing;

/// <summary>
/// Names the server commands of a coordinator's audit trail so that a fault can be aimed at one of them from run to
/// run: the audit line without its time and with the host and port of a <c>REPLICAOF</c> written "host port", and which
/// occurrence of it ("line#2"). Commands the coordinator pipelines may complete, and be audited, in either order;
/// a name still finds the same command.
/// </summary>
public sealed partial class AuditStep
{
    private readonly Dictionary<string, int> seen = [];
    private readonly Lock gate = new();

    /// <summary>The name of <paramref name="auditLine"/>, counting its occurrences so far.</summary>
    /// <param name="auditLine">A line the coordinator's audit callback was given.</param>
    public string Next(string auditLine)
    {
        var line = Normalize(auditLine);
        lock (gate)
        {
            var count = seen[line] = seen.GetValueOrDefault(line) + 1;
            return $"{line}#{count}";
        }
    }

    /// <summary>The line without what changes from run to run (its time, ports).</summary>
    /// <param name="auditLine">A line the coordinator's audit callback was given.</param>
    public static string Normalize(string auditLine) => Endpoint().Replace(Time().Replace(auditLine, string.Empty), "host port");

    [GeneratedRegex(@"127\.0\.0\.1 \d+")]
    private static partial Regex Endpoint();

    // An ISO-8601 time the audit line may start with.
    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT[\d:.]+Z ")]
    private static partial Regex Time();
}
