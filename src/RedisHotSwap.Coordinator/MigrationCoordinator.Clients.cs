using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Coordinator.State;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>
    /// Before a promotion (either cutover mode): stops, naming each one, while <paramref name="primary"/> has clients
    /// that are neither registered instances, replicas nor a coordinator, unless <see cref="CoordinatorOptions.AllowUnknownClients"/>.
    /// </summary>
    private async Task RefuseUnknownClientsAsync(MigrationState state, RedisNode primary)
    {
        var unknown = await UnknownClients.FindAsync(primary, instances.LiveAsync, options.PollInterval).ConfigureAwait(false);
        if (unknown.Count == 0)
        {
            return;
        }

        if (options.AllowUnknownClients)
        {
            progress?.Report(await StatusAsync($"nothing: promoting although (--allow-unknown-clients) {string.Join("; ", unknown)}").ConfigureAwait(false));
            return;
        }

        throw await HaltAsync(state, primary,
            $"Not promoting: {string.Join(Environment.NewLine, unknown)}",
            $"Nothing was promoted: {primary.Name} stays the primary and every instance on it; after a promotion those clients' writes would fail there, and nothing moves them.",
            "Stop those clients or set RedisHotSwap:MigrationId on them, then run the same command again; or pass --allow-unknown-clients to promote anyway.").ConfigureAwait(false);
    }
}
