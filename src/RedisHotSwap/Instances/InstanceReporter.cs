using Microsoft.Extensions.Logging;
using RedisHotSwap.Configuration;
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
    private string migrationId;
    private readonly string instanceId;
    private readonly string application;
    private readonly CancellationTokenSource stopping = new();
    private readonly SemaphoreSlim wake = new(0, 1);
    private readonly Task loop;
    private long sequence;
    private string? lastProblem;
    private int hinted;

    // 1 when the next report reads the directive first; a wake that only has news of this instance (the copy
    // participant's) leaves it 0 and saves that round trip, which under a copy fence is part of the pause.
    private int directiveDue = 1;

    public InstanceReporter(HotSwapConnectionMultiplexer multiplexer, string migrationId, Action<Directive?> onDirective, TimeProvider time)
    {
        this.multiplexer = multiplexer;
        this.migrationId = migrationId;
        this.onDirective = onDirective;
        this.time = time;
        instanceId = multiplexer.Identity.InstanceId;
        application = multiplexer.Identity.Application;
        multiplexer.Switched += (_, _) => Wake();
        multiplexer.Drained += Wake;
        loop = Task.Run(RunAsync);
    }

    public string InstanceId => instanceId;

    /// <summary>This instance's part in a copy migration, reported at every heartbeat; null when it takes part in none.</summary>
    internal Copy.CopyParticipant? Copy { get; set; }

    // One DEL per key: on a cluster the two reports lie in different slots.
    private async Task RemoveReportAsync(IDatabase db) => await Task.WhenAll(
        db.KeyDeleteAsync(MigrationKeys.Instance(migrationId, instanceId, RedisSide.Source)),
        db.KeyDeleteAsync(MigrationKeys.Instance(migrationId, instanceId, RedisSide.Target)),
        db.SetRemoveAsync(MigrationKeys.Instances(migrationId), instanceId)).ConfigureAwait(false);

    public async ValueTask DisposeAsync()
    {
        await stopping.CancelAsync().ConfigureAwait(false);
        await loop.ConfigureAwait(false);
        try
        {
            // A clean exit leaves no report to expire.
            var db = ((IConnectionMultiplexer)multiplexer).GetDatabase();
            await RemoveReportAsync(db).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException)
        {
            // The report expires by itself.
        }

        stopping.Dispose();
        wake.Dispose();
    }

    /// <summary>Reports (and reads the directive) now rather than at the next heartbeat.</summary>
    public void Wake()
    {
        Interlocked.Exchange(ref directiveDue, 1);
        Report();
    }

    /// <summary>
    /// Reports now, reading the directive first only if something else asked for it: this instance's own news (it
    /// tracks, it holds its writes) changes nothing the directive says, and the coordinator waits for the report.
    /// </summary>
    public void Report()
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
        var channel = Listen();
        var listening = false;

        while (!token.IsCancellationRequested)
        {
            // A reload that names another migration is applied here: this instance leaves the old one and takes part
            // in the new one (its report, its directive, its channel).
            if (multiplexer.Options.MigrationId is { Length: > 0 } wanted && wanted != migrationId)
            {
                await LeaveAsync(channel).ConfigureAwait(false);
                Log.MigrationJoined(multiplexer.Logger, migrationId, wanted);
                migrationId = wanted;
                        channel = Listen();
                listening = false;
                multiplexer.ForgetHandoff();
                onDirective(null);
            }

            try
            {
                await ReportAsync(readDirective: Interlocked.Exchange(ref directiveDue, 0) == 1).ConfigureAwait(false);
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
                if (!await wake.WaitAsync(multiplexer.Options.HeartbeatInterval, token).ConfigureAwait(false))
                {
                    Interlocked.Exchange(ref directiveDue, 1); // the heartbeat always reads it
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    // In the registry, the subscription follows every switch; reaching the server is tried until it works. A message
    // only wakes this loop, which reads the directive from the servers: what is published on the channel is never
    // trusted, so a forged or garbled message can neither steer this instance nor clear a directive.
    private RedisChannel Listen()
    {
        var channel = MigrationKeys.DirectiveChannel(migrationId);
        var listeningFor = migrationId;
        multiplexer.Subscriptions.AddOptional(channel, (_, message) =>
        {
            var announced = Directive.Read(message, listeningFor, out var problem);
            if (announced is null && problem is not null)
            {
                Log.DirectiveIgnored(multiplexer.Logger, listeningFor, $"a message on the control channel: {problem}");
            }

            // A copy migration keeps its directive on TARGET only (SOURCE's data is not touched) and announces it on
            // SOURCE's channel too: an instance with no connection to TARGET yet goes and reads it there (the message
            // only says where to look; what counts is what TARGET holds).
            if (announced is { Copy: not null } or { Side: RedisSide.Target })
            {
                Interlocked.Exchange(ref hinted, 1);
            }

            Wake();
        });
        return channel;
    }

    // Leaves a migration: its report and its channel go (best effort: a report left behind expires by itself).
    private async Task LeaveAsync(RedisChannel channel)
    {
        multiplexer.Subscriptions.Remove(channel, handler: null);
        try
        {
            await multiplexer.ReleaseSubscriptionAsync(channel, CommandFlags.None).ConfigureAwait(false);
            var db = ((IConnectionMultiplexer)multiplexer).GetDatabase();
            await RemoveReportAsync(db).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException or TimeoutException)
        {
            Log.ReportFailed(multiplexer.Logger, ex.Message);
        }
    }

    /// <summary>
    /// Reads the standing directive from the active side and from the armed one (the coordinator writes a new
    /// directive to the side that has just become the primary), checks it, and hands the newest valid one on.
    /// A value that is not a valid directive for this migration is logged and changes nothing.
    /// </summary>
    public async Task ReadDirectiveAsync()
    {
        var key = MigrationKeys.Directive(migrationId);

        // The active route's own connection, not the application's handle: a copy migration's fence holds those.
        var reads = new List<Task<RedisValue>> { multiplexer.ActiveRoute.Multiplexer.GetDatabase().StringGetAsync(key) };
        if (multiplexer.ArmedRoute is { } armed)
        {
            reads.Add(ReadQuietlyAsync(armed.Multiplexer.GetDatabase(), key));
        }
        else if (Interlocked.Exchange(ref hinted, 0) == 1 && multiplexer.ActiveSide == RedisSide.Source)
        {
            reads.Add(ReadOtherSideAsync(key));
        }

        Directive? newest = null;
        var refused = false;
        foreach (var read in reads)
        {
            var value = await read.ConfigureAwait(false);
            if (value == Unread)
            {
                refused = true; // unknown is not "none": the standing directive stays unless another read names a newer one
                continue;
            }

            var directive = Directive.Read(value, migrationId, out var problem);
            if (problem is not null)
            {
                refused = true;
                if (problem != lastProblem)
                {
                    Log.DirectiveIgnored(multiplexer.Logger, migrationId, problem);
                }

                lastProblem = problem;
            }
            else if (directive is not null && (newest is null || directive.Epoch > newest.Epoch))
            {
                newest = directive;
            }
        }

        if (newest is not null || !refused)
        {
            onDirective(newest);
        }
    }

    /// <summary>
    /// Reads the standing directive from a server before the application's connection exists, so that an instance
    /// that starts after a handoff connects straight to the side it must use (its configured side may be a replica
    /// now). Null when there is none, it is not valid, or the server cannot be read (the first heartbeat reads again).
    /// </summary>
    public static async Task<Directive?> ReadStandingAsync(string source, string target, string migrationId, InstanceIdentity identity, ILogger logger)
    {
        // TARGET, which may not run yet, is given a second at most: an instance never waits long for it at start.
        var read = await Task.WhenAll(
            ReadStandingAsync(source, migrationId, identity, logger),
            ReadStandingAsync(target, migrationId, identity, logger, connectTimeoutMs: 1000)).ConfigureAwait(false);
        return read.OfType<Directive>().MaxBy(d => d.Epoch);
    }

    private static async Task<Directive?> ReadStandingAsync(string configuration, string migrationId, InstanceIdentity identity, ILogger logger, int? connectTimeoutMs = null)
    {
        try
        {
            var options = ConfigurationOptions.Parse(configuration);
            options.AbortOnConnectFail = true;
            options.ClientName = identity.ClientName;
            if (connectTimeoutMs is { } limit)
            {
                options.ConnectTimeout = Math.Min(options.ConnectTimeout, limit);
            }

            var connection = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
            RedisValue value;
            try
            {
                value = await connection.GetDatabase().StringGetAsync(MigrationKeys.Directive(migrationId)).ConfigureAwait(false);
            }
            finally
            {
                await connection.DisposeAsync().ConfigureAwait(false);
            }

            var directive = Directive.Read(value, migrationId, out var problem);
            if (problem is not null)
            {
                Log.DirectiveIgnored(logger, migrationId, problem);
            }

            return directive;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ArgumentException)
        {
            Log.ReportFailed(logger, Redaction.Scrub(ex.Message, configuration));
            return null;
        }
    }

    // TARGET's copy of the directive, read through a connection of its own (the instance has none to TARGET yet).
    private async Task<RedisValue> ReadOtherSideAsync(RedisKey key)
    {
        var configuration = multiplexer.Options.ConfigurationFor(RedisSide.Target);
        try
        {
            var options = ConfigurationOptions.Parse(configuration);
            options.AbortOnConnectFail = true;
            var connection = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
            await using (connection.ConfigureAwait(false))
            {
                return await connection.GetDatabase().StringGetAsync(key).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ArgumentException)
        {
            Log.ReportFailed(multiplexer.Logger, Redaction.Scrub(ex.Message, configuration));
            return RedisValue.Null;
        }
    }

    // The armed connection may be closed under the read: then it says nothing. A read that failed while the connection
    // is still armed (a timeout on a busy server) must not pass for "no directive": that would clear the standing one.
    private static readonly RedisValue Unread = "\0unread";

    private async Task<RedisValue> ReadQuietlyAsync(IDatabase db, RedisKey key)
    {
        try
        {
            return await db.StringGetAsync(key).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or ObjectDisposedException or TimeoutException)
        {
            return multiplexer.ArmedRoute is { } armed && ReferenceEquals(armed.Multiplexer, db.Multiplexer) ? Unread : RedisValue.Null;
        }
    }

    private async Task ReportAsync(bool readDirective)
    {
        // The directive first, whatever becomes of the report: a paused or fenced SOURCE holds or refuses the
        // report, and the directive read beside it is exactly what moves this instance off it.
        if (readDirective)
        {
            await ReadDirectiveAsync().ConfigureAwait(false);
        }

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
            multiplexer.IsDraining,
            Armed: multiplexer.ArmedSide,
            ArmedUnder: multiplexer.ArmedUnder,
            SwitchedAt: multiplexer.SwitchedAt,
            Tracking: Copy?.Tracking,
            Fenced: Copy?.Fenced);

        // During a copy migration the report goes to TARGET, through the warm connection: SOURCE's data stays as it
        // was, and the application's handles (which the fence holds) are not used.
        var db = report.Tracking is not null && multiplexer.ArmedRoute is { Side: RedisSide.Target } armed
            ? armed.Multiplexer.GetDatabase()
            : ((IConnectionMultiplexer)multiplexer).GetDatabase();
        var batch = db.CreateBatch();
        var set = batch.StringSetAsync(MigrationKeys.Instance(migrationId, instanceId, report.Side), report.ToJson(), options.HeartbeatTimeToLive);
        var add = batch.SetAddAsync(MigrationKeys.Instances(migrationId), instanceId);
        batch.Execute();
        await Task.WhenAll(set, add).ConfigureAwait(false);
    }
}
