using RedisHotSwap.Configuration;

namespace RedisHotSwap.Coordinator;

/// <summary>Masks the secrets of a migration's configuration strings in any text shown to an operator.</summary>
internal static class Redacted
{
    /// <summary><paramref name="text"/> with the passwords of <paramref name="options"/> masked.</summary>
    public static string Text(string text, CoordinatorOptions options) =>
        Redaction.Scrub(Redaction.Scrub(text, options.Source), options.Target);
}
