using System.Diagnostics;
using System.Globalization;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Safety;

/// <summary>
/// Before a promotion: the clients of the side giving up the primary role that are neither registered instances
/// (told apart by the name the SDK gives its connections), replicas, nor a coordinator. Whatever they write after
/// the promotion fails there, and nobody moves them: an application that never set <c>MigrationId</c>, a script, a job.
/// </summary>
internal static class UnknownClients
{
    /// <summary>
    /// How long a client named as an instance but without a report yet is waited for: an instance connects a moment
    /// before its first report, so one that has just started is not taken for a stranger.
    /// </summary>
    public static readonly TimeSpan ReportGrace = TimeSpan.FromSeconds(10);

    /// <summary>One line per unknown client; or one line saying they cannot be listed. Empty when there is none.</summary>
    /// <param name="node">The server whose clients are listed.</param>
    /// <param name="live">The live instances' reports, read again each round.</param>
    /// <param name="poll">How long to wait between rounds while an instance that has just connected has not reported.</param>
    public static async Task<IReadOnlyList<string>> FindAsync(RedisNode node, Func<Task<IReadOnlyList<InstanceReport>>> live, TimeSpan poll)
    {
        var waiting = Stopwatch.StartNew();
        while (true)
        {
            string list;
            try
            {
                list = await node.ClientListAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisServerException or RedisCommandException)
            {
                return [$"{node.Name} refuses CLIENT LIST ({ex.Message.Split('\n')[0].Trim()}): its clients cannot be checked for writers this migration does not know."];
            }

            var unknown = Unknown(list, (await live().ConfigureAwait(false)).Select(r => ClientNames.Clean(r.InstanceId)).ToHashSet(StringComparer.Ordinal)).ToArray();
            var starting = unknown.Any(c => ClientNames.InstanceIdOf(c.Name) is not null && c.AgeSeconds < ReportGrace.TotalSeconds);
            if (!starting || waiting.Elapsed > ReportGrace)
            {
                return unknown.Select(c => $"{node.Name} has a client that is no registered instance: {c.Describe()}").ToArray();
            }

            await Task.Delay(poll).ConfigureAwait(false);
        }
    }

    /// <summary>The clients in a <c>CLIENT LIST</c> reply that no one accounts for (pure: unit tested).</summary>
    public static IEnumerable<ClientEntry> Unknown(string clientList, IReadOnlySet<string> registeredInstanceIds) =>
        clientList.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(ClientEntry.Parse)
            .Where(c => !c.IsReplication && !c.CannotWrite && !ClientNames.IsCoordinator(c.Name)
                && !(ClientNames.InstanceIdOf(c.Name) is { } id && registeredInstanceIds.Contains(id)));
}

/// <summary>One line of <c>CLIENT LIST</c>.</summary>
internal sealed record ClientEntry(string Address, string Name, string Flags, string LastCommand, long AgeSeconds, string Resp)
{
    /// <summary>A replica's link (flag S, or a replication command) or this server's link to its own primary (flag M).</summary>
    public bool IsReplication => Flags.Contains('S', StringComparison.Ordinal) || Flags.Contains('M', StringComparison.Ordinal)
        || LastCommand is "replconf" or "psync" or "sync";

    /// <summary>A RESP2 connection in subscribe mode, or one in MONITOR: neither can send a write.</summary>
    public bool CannotWrite => (Flags.Contains('P', StringComparison.Ordinal) && Resp == "2") || Flags.Contains('O', StringComparison.Ordinal);

    public static ClientEntry Parse(string line)
    {
        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(f => f.Split('=', 2))
            .Where(kv => kv.Length == 2)
            .GroupBy(kv => kv[0], StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First()[1], StringComparer.Ordinal);
        return new ClientEntry(
            fields.GetValueOrDefault("addr", "?"),
            fields.GetValueOrDefault("name", string.Empty),
            fields.GetValueOrDefault("flags", string.Empty),
            fields.GetValueOrDefault("cmd", string.Empty),
            long.TryParse(fields.GetValueOrDefault("age"), CultureInfo.InvariantCulture, out var age) ? age : 0,
            fields.GetValueOrDefault("resp", "2"));
    }

    /// <summary>For an operator: where it connects from, its name, its last command, how long it has been connected.</summary>
    public string Describe() =>
        $"{Address}, name {(Name.Length == 0 ? "(none)" : $"'{Name}'")}, last command {(LastCommand.Length == 0 ? "(none)" : LastCommand)}, connected {AgeSeconds.ToString(CultureInfo.InvariantCulture)} s"
        + (ClientNames.InstanceIdOf(Name) is not null ? " (a RedisHotSwap instance that does not report: is RedisHotSwap:MigrationId set on it?)" : string.Empty);
}
