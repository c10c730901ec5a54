using RedisHotSwap.Protocol;

namespace RedisHotSwap.Coordinator;

public sealed partial class MigrationCoordinator
{
    /// <summary>Makes TARGET a replica of SOURCE and waits until its initial sync is done.</summary>
    public async Task ReplicateAsync(CancellationToken cancellationToken = default)
    {
        await using var hold = (await HoldLeaseAsync("replicate").ConfigureAwait(false)).ConfigureAwait(false);
        var state = await ReadStateAsync().ConfigureAwait(false);
        if (state.Phase is > MigrationPhase.Replicating and not MigrationPhase.Aborted)
        {
            return; // resuming past this phase
        }

        await CheckAsync().ConfigureAwait(false);

        var target = await Target.InfoAsync().ConfigureAwait(false);
        if (!(target.IsReplica && ReplicatesSource(target)))
        {
            // Safe to (re)issue: no application writes to TARGET before the cutover opens the writable window.
            state = await EnterAsync(state, MigrationPhase.Replicating, Source).ConfigureAwait(false);
            await Source.Database.KeyDeleteAsync(MigrationKeys.Directive(options.MigrationId)).ConfigureAwait(false);

            // Until the writable window or a promotion, an application that writes TARGET (flipped early, or a server
            // an earlier window migration left writable) must be refused: the initial sync would erase what it wrote.
            state = await ChangeSettingAsync(state, Source, Target, "replica-read-only", "yes", "no application writes TARGET before the writable window or a promotion").ConfigureAwait(false);
            if (Source.Options.Password is { Length: > 0 } password)
            {
                state = await ChangeSettingAsync(state, Source, Target, "masterauth", password, "so that TARGET can replicate SOURCE").ConfigureAwait(false);
            }

            if (Source.Options.User is { Length: > 0 } user)
            {
                state = await ChangeSettingAsync(state, Source, Target, "masteruser", user, "so that TARGET can replicate SOURCE").ConfigureAwait(false);
            }

            await Target.ExecuteAuditedAsync("make TARGET a replica of SOURCE", "REPLICAOF", Source.Host, Source.Port).ConfigureAwait(false);
        }
        else if (state.Phase == MigrationPhase.New)
        {
            state = await EnterAsync(state, MigrationPhase.Replicating, Source).ConfigureAwait(false);
        }

        var synced = await WaitAsync(options.SyncTimeout, async () =>
        {
            var info = await Target.InfoAsync().ConfigureAwait(false);
            if (!info.LinkUp || info.SyncInProgress)
            {
                return (false, info.SyncInProgress ? "initial sync of TARGET" : "TARGET's replication link");
            }

            var lag = (await Source.InfoAsync().ConfigureAwait(false)).MasterOffset - info.ReplicaOffset;
            return (lag <= options.MaxLagBytes, $"TARGET to come within {options.MaxLagBytes:N0} bytes of SOURCE ({lag:N0} behind)");
        }, cancellationToken).ConfigureAwait(false);

        if (!synced)
        {
            throw await HaltAsync(state, Source,
                $"TARGET did not finish its initial sync and come within {options.MaxLagBytes:N0} bytes of SOURCE within {options.SyncTimeout}.",
                "TARGET stays a replica of SOURCE; no application was moved.",
                "Check TARGET's log (masterauth, network, disk), then run the same command again to keep waiting, or 'abort'.").ConfigureAwait(false);
        }
    }
}
