using System.Reflection;
using Microsoft.Extensions.Logging;
using RedisHotSwap.Connection;
using RedisHotSwap.Protocol;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Instances;

/// <summary>
/// Tells the coordinator, at every heartbeat and right after every switch, which side this instance uses; and
/// hands the coordinator's directive, when there is one, to the trigger.
/// </summary>
/// <remarks>
/// The report goes to the server the instance uses, with a time-to-live: an instance that dies simply expires.
/// While TARGET replicates SOURCE, TARGET sees both kinds of report; the coordinator reads both servers and keeps
/// the copy with the higher sequence number.
/// </remarks>
internal sealed class InstanceReporter : IAsyncDisposable
{
    private readonly HotSwapConnectionMultiplexer multiplexer;
    private readonly Action<Directive?> onDirective;
    private readonly TimeProvider time;
    private readonly string migrationId;
    private readonly RedisKey instanceKey;
    private readonly string instanceId;
    private readonly string application;
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim wake = new(0, 1);
    private readonly Task loop;
    private long sequence;

    public InstanceReporter(HotSwapConnectionMultiplexer multiplexer, string migrationId, Action<Directive?> onDirective, TimeProvider time)
    {
        this.multiplexer = multiplexer;
        this.migrationId = migrationId;
        this.onDirective = onDirective;
        this.time = time;
        instanceId = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}"[..^24];
        instanceKey = MigrationKeys.Instance(migrationId, instanceId);
        application = Assembly.GetEntryAssembly()?.GetName().Name ?? "unknown";
        multiplexer.Switched += (_, _) => Wake();
        multiplexer.Drained += Wake;
        loop = Task.Run(RunAsync);
    }

    public string InstanceId => instanceId;

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        await loop.ConfigureAwait(false);
        try
        {
            // A clean exit leaves no report to expire.
            var db = ((IConnectionMultiplexer)multiplexer).GetDatabase();
            await db.KeyDeleteAsync(instanceKey).ConfigureAwait(false);
            await db.SetRemoveAsync(MigrationKeys.Instances(migrationId), instanceId).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            // The report expires by itself.
        }

        stopping.Dispose();
        wake.Dispose();
    }

    private void Wake()
    {
        try
        {
            wake.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already due.
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task RunAsync()
    {
        var token = stopping.Token;
        var channel = MigrationKeys.DirectiveChannel(migrationId);

        // In the registry, the subscription follows every switch; reaching the server is tried until it works.
        multiplexer.Subscriptions.AddOptional(channel, (_, message) =>
        {
            onDirective(Directive.FromJson(message));
            Wake();
        });
        var listening = false;

        while (!token.IsCancellationRequested)
        {
            try
            {
                await ReportAsync().ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                if (token.IsCancellationRequested)
                {
                    return; // stopping: whatever the last report met no longer matters
                }

                // Whatever went wrong, the next heartbeat tries again: a silent instance would look dead.
                Log.ReportFailed(multiplexer.Logger, ex.Message);
            }

            // The push channel only speeds directives up (the report reads them too): it may fail, say for want of
            // an ACL channel permission, without keeping this instance from reporting.
            if (!listening)
            {
                try
                {
                    await multiplexer.EnsureSubscribedAsync(channel, CommandFlags.None).ConfigureAwait(false);
                    listening = true;
                }
                catch (Exception ex)
                {
                    if (token.IsCancellationRequested)
                    {
                        return;
                    }

                    Log.SubscribeFailed(multiplexer.Logger, channel.ToString(), multiplexer.ActiveSide, ex.Message);
                }
            }

            try
            {
                await wake.WaitAsync(multiplexer.Options.HeartbeatInterval, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ReportAsync()
    {
        var options = multiplexer.Options;
        var report = new InstanceReport(
            instanceId,
            Environment.MachineName,
            Environment.ProcessId,
            application,
            multiplexer.ActiveSide,
            migrationId,
            multiplexer.Generation,
            Interlocked.Increment(ref sequence),
            time.GetUtcNow(),
            multiplexer.IsDraining);

        var db = ((IConnectionMultiplexer)multiplexer).GetDatabase();
        var batch = db.CreateBatch();
        var set = batch.StringSetAsync(instanceKey, report.ToJson(), options.HeartbeatTimeToLive);
        var add = batch.SetAddAsync(MigrationKeys.Instances(migrationId), instanceId);
        var directive = batch.StringGetAsync(MigrationKeys.Directive(migrationId));
        batch.Execute();

        // The directive first, whatever becomes of the report: on a fenced SOURCE the report is refused, and the
        // directive read beside it is exactly what moves this instance off it.
        onDirective(Directive.FromJson(await directive.ConfigureAwait(false)));
        await Task.WhenAll(set, add).ConfigureAwait(false);
    }
}
