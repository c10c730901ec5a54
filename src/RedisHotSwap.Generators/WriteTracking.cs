using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;

namespace RedisHotSwap.Generators;

/// <summary>
/// What a copy migration needs to know of one <c>IDatabase</c> command: whether it passes the fence at all, whether
/// it writes, and which of its arguments name the keys it writes. Conservative: a command not known to only read
/// writes, and a write whose keys are not all named by its arguments marks "unknown", which makes the coordinator copy
/// every key again.
/// </summary>
internal sealed class WriteTracking
{
    // Commands that change nothing a copy must carry (by name, without the Async suffix). Everything else writes.
    // PFCOUNT is left out on purpose: it rewrites the HyperLogLog's cached cardinality, so the string's bytes change.
    private static readonly HashSet<string> Reads =
    [
        "KeyExists", "KeyType", "KeyTimeToLive", "KeyExpireTime", "KeyIdleTime", "KeyRefCount", "KeyEncoding", "KeyFrequency",
        "KeyDump", "KeyRandom", "KeyTouch", "Ping", "Publish", "DebugObject", "LockQuery", "ScriptEvaluateReadOnly", "Sort",
        "StringGet", "StringGetBit", "StringGetRange", "StringGetWithExpiry", "StringGetLease", "StringLength", "StringBitCount",
        "StringBitPosition", "StringLongestCommonSubsequence", "StringLongestCommonSubsequenceLength", "StringLongestCommonSubsequenceWithMatches",
        "HashGet", "HashGetAll", "HashGetLease", "HashExists", "HashKeys", "HashLength", "HashValues", "HashScan", "HashScanNoValues",
        "HashStringLength", "HashRandomField", "HashRandomFields", "HashRandomFieldsWithValues", "HashFieldGetTimeToLive", "HashFieldGetExpireDateTime",
        "ListGetByIndex", "ListLength", "ListRange", "ListPosition", "ListPositions",
        "SetContains", "SetLength", "SetMembers", "SetRandomMember", "SetRandomMembers", "SetScan", "SetCombine", "SetIntersectionLength",
        "SortedSetCombine", "SortedSetCombineWithScores", "SortedSetIntersectionLength", "SortedSetLength", "SortedSetLengthByValue",
        "SortedSetRandomMember", "SortedSetRandomMembers", "SortedSetRandomMembersWithScores", "SortedSetRangeByRank",
        "SortedSetRangeByRankWithScores", "SortedSetRangeByScore", "SortedSetRangeByScoreWithScores", "SortedSetRangeByValue",
        "SortedSetRank", "SortedSetScan", "SortedSetScore", "SortedSetScores",
        "StreamInfo", "StreamGroupInfo", "StreamConsumerInfo", "StreamLength", "StreamPending", "StreamPendingMessages", "StreamRange", "StreamRead",
        "GeoDistance", "GeoHash", "GeoPosition", "GeoRadius", "GeoSearch",
    ];

    // Members that are no command (they wait for a task, or ask the client): they never pass the fence.
    private static readonly HashSet<string> NotCommands = ["Wait", "TryWait", "WaitAll", "IsConnected", "IdentifyEndpoint"];

    private readonly string[] keyArguments;

    private WriteTracking(bool isWrite, bool unknown, string[] keyArguments)
    {
        IsWrite = isWrite;
        Unknown = unknown;
        this.keyArguments = keyArguments;
    }

    /// <summary>Whether the command may change data.</summary>
    public bool IsWrite { get; }

    /// <summary>Whether the command may write keys its arguments do not name (another database, a script given as an object, a raw command).</summary>
    public bool Unknown { get; }

    /// <summary>How a command of <paramref name="iface"/> is tracked; null when it is not (another interface, or no command).</summary>
    public static WriteTracking? For(INamedTypeSymbol iface, IMethodSymbol method)
    {
        var name = iface.ToDisplayString();
        if (name is not ("StackExchange.Redis.IDatabase" or "StackExchange.Redis.IDatabaseAsync" or "StackExchange.Redis.IBatch" or "StackExchange.Redis.ITransaction"))
        {
            return null;
        }

        var command = method.Name.EndsWith("Async", System.StringComparison.Ordinal) ? method.Name.Substring(0, method.Name.Length - 5) : method.Name;
        if (NotCommands.Contains(command))
        {
            return null;
        }

        if (Reads.Contains(command))
        {
            return new WriteTracking(isWrite: false, unknown: false, []);
        }

        var keys = method.Parameters.Where(IsKeys).Select(p => p.Name).ToArray();
        var otherDatabase = method.Parameters.Any(p => p.Type.SpecialType == SpecialType.System_Int32 && p.Name is "database" or "destinationDatabase");
        return new WriteTracking(isWrite: true, unknown: keys.Length == 0 || otherDatabase, keys);
    }

    /// <summary>The statements that mark the keys on <c>__tracker</c>, for a command run on database <paramref name="database"/>.</summary>
    public string Marks(string database) =>
        !IsWrite ? string.Empty
        : Unknown ? "__tracker.MarkUnknown();" + string.Concat(keyArguments.Select(k => $" __tracker.Mark({database}, {Escape(k)});"))
        : string.Join(" ", keyArguments.Select(k => $"__tracker.Mark({database}, {Escape(k)});"));

    /// <summary>The statements that note the keys on a unit (transaction, batch), to be marked once it ran.</summary>
    public string UnitMarks() =>
        (Unknown ? "TouchUnknown(); " : string.Empty) + string.Join(" ", keyArguments.Select(k => $"Touch({Escape(k)});"));

    private static bool IsKeys(IParameterSymbol parameter)
    {
        var type = parameter.Type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat.WithMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.None));
        return type is "global::StackExchange.Redis.RedisKey"
            or "global::StackExchange.Redis.RedisKey[]"
            or "global::System.Collections.Generic.KeyValuePair<global::StackExchange.Redis.RedisKey, global::StackExchange.Redis.RedisValue>[]"
            or "global::System.ReadOnlyMemory<global::StackExchange.Redis.RedisKey>"
            or "global::StackExchange.Redis.StreamPosition[]";
    }

    private static string Escape(string name) =>
        Microsoft.CodeAnalysis.CSharp.SyntaxFacts.GetKeywordKind(name) != Microsoft.CodeAnalysis.CSharp.SyntaxKind.None ? "@" + name : name;
}
