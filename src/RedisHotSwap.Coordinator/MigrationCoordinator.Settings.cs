using System.Collections.Immutable;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;

namespace RedisHotSwap.Coordinator;

/// <summary>
/// The server settings a migration changes beside the fence (which keeps its own record): each one's value before its
/// first change is written into the state, and put back exactly when the migration ends (promotion in the window
/// mode, abort, finish). A secret (<c>masterauth</c>) is never recorded: only whether it had a value.
/// </summary>
public sealed partial class MigrationCoordinator
{
    // What the state records in place of a secret that had a value: the value itself is never written anywhere.
    private const string SecretWasSet = "(a value of its own)";

    // ...and in place of one that already had the value the migration needed (one password for both servers): left as it is.
    private const string SecretWasSame = "(the value the migration set)";

    private static bool IsSecret(string key) => key is "masterauth";

    /// <summary>
    /// <c>CONFIG SET</c> on <paramref name="node"/>, its earlier value recorded first (in the state on
    /// <paramref name="stateOn"/>) unless an earlier change of this migration recorded it; nothing is sent when the
    /// setting already has the value.
    /// </summary>
    private async Task<MigrationState> ChangeSettingAsync(MigrationState state, RedisNode stateOn, RedisNode node, string key, string value, string reason)
    {
        var current = await node.ConfigGetAsync(key).ConfigureAwait(false) ?? string.Empty;
        var field = SettingField(node, key);
        if (!state.OriginalSettings.ContainsKey(field))
        {
            var original = !IsSecret(key) || current.Length == 0 ? current : current == value ? SecretWasSame : SecretWasSet;
            state = await store.WriteAsync(state with { OriginalSettings = state.OriginalSettings.SetItem(field, original) }, stateOn).ConfigureAwait(false);
        }

        if (current != value)
        {
            await node.ConfigSetAuditedAsync(key, value, reason).ConfigureAwait(false);
        }

        return state;
    }

    /// <summary>
    /// Puts back every setting this migration changed on <paramref name="nodes"/> as it was before; a secret that had a
    /// value of its own is cleared (it was replaced, and is kept nowhere) and the operator is told to set it again.
    /// </summary>
    private async Task RestoreSettingsAsync(MigrationState state, params RedisNode[] nodes)
    {
        foreach (var node in nodes)
        {
            foreach (var (field, original) in state.OriginalSettings.Where(s => s.Key.StartsWith(SettingField(node, string.Empty), StringComparison.Ordinal) && s.Value != SecretWasSame))
            {
                var key = field[SettingField(node, string.Empty).Length..];
                var value = original == SecretWasSet ? string.Empty : original;
                if ((await node.ConfigGetAsync(key).ConfigureAwait(false) ?? string.Empty) != value)
                {
                    await node.ConfigSetAuditedAsync(key, value, original == SecretWasSet
                        ? $"the other server's secret does not stay; {node.Name}'s own {key} was replaced during the migration: set it again if it still needs one"
                        : "put back as it was before the migration", undo: true).ConfigureAwait(false);
                }
            }
        }
    }

    private string SettingField(RedisNode node, string key) => $"{(node == Source ? "source" : "target")}:{key}";
}
