using System.Threading.Channels;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.FeatureManagement;
using RedisHotSwap.Configuration;
using RedisHotSwap.Connection;
using RedisHotSwap.Protocol;
using RedisHotSwap.Telemetry;

namespace RedisHotSwap.Triggers;

/// <summary>
/// Watches the options, the feature flag and the coordinator's directive, and makes the multiplexer follow what
/// <see cref="Routing.Decide"/> makes of them: the side traffic goes to, and the side to keep warm for a handoff.
/// </summary>
/// <remarks>
/// Every notification (options reload, configuration reload, flag poll, directive) only wakes one loop, which
/// evaluates the rule and compares its answer with what the multiplexer does. Duplicate and spurious notifications,
/// which configuration providers do send, therefore never cause a second switch. A failed switch is tried again
/// after <see cref="RedisHotSwapOptions.RetryInterval"/>. A switch asked for from code passes the same rule.
/// </remarks>
internal sealed class SwitchTrigger : IAsyncDisposable
{
    private readonly HotSwapConnectionMultiplexer multiplexer;
    private readonly IOptionsMonitor<RedisHotSwapOptions> monitor;
    private readonly RedisHotSwapOptionsValidator validator;
    private readonly IFeatureManager? features;
    private readonly TimeProvider time;
    private readonly ILogger logger;
    private readonly Channel<bool> wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly SemaphoreSlim evaluating = new(1, 1);
    private readonly CancellationTokenSource stopping = new();
    private readonly List<IDisposable> registrations = [];
    private Task loop = Task.CompletedTask;
    private bool retryPending;
    private Directive? directive;
    private CodeRequest? code;
    private DateTimeOffset? reconnectedFor;
    private long refusedEpoch;
    private string? warnedMigrationId;
    private bool evaluatedOnce;

    public SwitchTrigger(
        HotSwapConnectionMultiplexer multiplexer,
        IOptionsMonitor<RedisHotSwapOptions> monitor,
        RedisHotSwapOptionsValidator validator,
        IFeatureManager? features,
        IConfiguration? configuration,
        TimeProvider time,
        ILogger logger)
    {
        this.multiplexer = multiplexer;
        this.monitor = monitor;
        this.validator = validator;
        this.features = features;
        this.time = time;
        this.logger = logger;

        if (monitor.OnChange((_, _) => Wake()) is { } onChange)
        {
            registrations.Add(onChange);
        }

        // Feature flags are read from the root configuration, which the options do not see.
        if (configuration is not null)
        {
            registrations.Add(ChangeToken.OnChange(configuration.GetReloadToken, Wake));
        }

        multiplexer.CodeRequests = RequestAsync;
    }

    /// <summary>This instance's part in a copy migration, applied after every evaluation; null when it takes part in none.</summary>
    internal Copy.CopyParticipant? Copy { get; set; }

    /// <summary>Reads the options, refusing invalid ones with one line per problem.</summary>
    public static RedisHotSwapOptions ReadValid(IOptionsMonitor<RedisHotSwapOptions> monitor, RedisHotSwapOptionsValidator validator)
    {
        var options = monitor.CurrentValue;
        var result = validator.Validate(Options.DefaultName, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(Options.DefaultName, typeof(RedisHotSwapOptions), result.Failures);
        }

        return options;
    }

    /// <summary>The side the options (and the flag, when named) ask for.</summary>
    public static async Task<RedisSide> DecideAsync(RedisHotSwapOptions options, IFeatureManager? features)
    {
        if (string.IsNullOrWhiteSpace(options.FeatureFlag))
        {
            return options.UseTarget ? RedisSide.Target : RedisSide.Source;
        }

        return await features!.IsEnabledAsync(options.FeatureFlag).ConfigureAwait(false) ? RedisSide.Target : RedisSide.Source;
    }

    /// <summary>Applies the rule once, now (at start, so that a standing directive is followed before the first command), then keeps watching.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await evaluating.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await EvaluateAsync(throwOnFailure: false, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            evaluating.Release();
        }

        loop = Task.Run(RunAsync, CancellationToken.None);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var registration in registrations)
        {
            registration.Dispose();
        }

        multiplexer.CodeRequests = null;
        await stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        stopping.Dispose();
    }

    /// <summary>
    /// The coordinator's directive, already validated (null when there is none); it outranks configuration, flag and
    /// code while it stands. An older one than the standing directive (a replay, a stale copy) changes nothing.
    /// </summary>
    public void SetDirective(Directive? value)
    {
        var previous = Volatile.Read(ref directive);
        if (value is not null && previous is not null && value.Epoch < previous.Epoch && value.MigrationId == previous.MigrationId)
        {
            // A replay, or a stale copy: never a step back. Logged once per directive refused.
            if (Interlocked.Exchange(ref refusedEpoch, value.Epoch) != value.Epoch)
            {
                Log.DirectiveIgnored(logger, value.MigrationId ?? string.Empty, $"its epoch {value.Epoch} is older than the standing directive's {previous.Epoch}");
            }

            return;
        }

        if (Interlocked.CompareExchange(ref directive, value, previous) == previous && previous != value) // by value: every heartbeat reads the same directive anew
        {
            if (value is not null)
            {
                Log.DirectiveReceived(logger, value.Side, value.Reason);
            }

            Wake();
        }
    }

    private void Wake() => wake.Writer.TryWrite(true);

    // IHotSwapController.SwitchToAsync: recorded, then decided by the same rule as everything else.
    private async Task<bool> RequestAsync(RedisSide side, CancellationToken cancellationToken)
    {
        await evaluating.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var options = multiplexer.Options;
            code = new CodeRequest(side, await DecideAsync(options, features).ConfigureAwait(false));
            if (Volatile.Read(ref directive) is { } standing && standing.Side != side)
            {
                Log.CodeRequestOutranked(logger, side, standing.Reason);
            }

            var before = multiplexer.Generation;
            await EvaluateAsync(throwOnFailure: true, cancellationToken).ConfigureAwait(false);
            return multiplexer.Generation != before;
        }
        finally
        {
            evaluating.Release();
        }
    }

    private async Task RunAsync()
    {
        var token = stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await WaitForWakeAsync(token).ConfigureAwait(false);
                await evaluating.WaitAsync(token).ConfigureAwait(false);
                try
                {
                    await EvaluateAsync(throwOnFailure: false, token).ConfigureAwait(false);
                }
                finally
                {
                    evaluating.Release();
                }
            }
            catch (Exception ex)
            {
                if (token.IsCancellationRequested)
                {
                    return; // stopping: a switch cut short by the stop is no failure
                }

                // The loop must outlive any one evaluation: it is what moves the instance.
                retryPending = true;
                Log.SwitchFailed(logger, multiplexer.ActiveSide, ex.Message, multiplexer.ActiveSide, multiplexer.Options.RetryInterval);
            }
        }
    }

    private async Task WaitForWakeAsync(CancellationToken token)
    {
        var options = multiplexer.Options;
        TimeSpan? poll = retryPending ? options.RetryInterval
            : string.IsNullOrWhiteSpace(options.FeatureFlag) ? null
            : options.FeatureFlagPollInterval;

        if (poll is null)
        {
            await wake.Reader.WaitToReadAsync(token).ConfigureAwait(false);
        }
        else
        {
            using var timeout = new CancellationTokenSource(poll.Value, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(token, timeout.Token);
            try
            {
                await wake.Reader.WaitToReadAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!token.IsCancellationRequested)
            {
                // The poll interval passed: evaluate again.
            }
        }

        wake.Reader.TryRead(out _);
    }

    // Under the evaluation gate: one decision at a time.
    private async Task EvaluateAsync(bool throwOnFailure, CancellationToken token)
    {
        RedisHotSwapOptions options;
        try
        {
            options = ReadValid(monitor, validator);
        }
        catch (OptionsValidationException ex)
        {
            Log.ReloadRejected(logger, string.Join(" ", ex.Failures));
            return;
        }

        multiplexer.Options = options;
        RedisSide configured;
        try
        {
            configured = await DecideAsync(options, features).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.FlagFailed(logger, ex, options.FeatureFlag!);
            return;
        }

        if (code is { } asked && asked.ConfiguredWhenAsked != configured)
        {
            code = null; // the configured side changed since: it decides again
        }

        var directing = Volatile.Read(ref directive);
        var configuredBy = string.IsNullOrWhiteSpace(options.FeatureFlag) ? "configuration UseTarget" : $"feature flag {options.FeatureFlag}";
        if (directing?.MigrationId is { } directed && !string.Equals(directed, options.MigrationId, StringComparison.Ordinal) && warnedMigrationId != options.MigrationId)
        {
            // The reporter keeps the id it started with; a directive of that migration no longer speaks for this configuration.
            warnedMigrationId = options.MigrationId;
            Log.MigrationIdChanged(logger, directed, options.MigrationId ?? "(none)");
        }

        var outcome = Routing.Decide(new RoutingInputs(directing, code, configured, configuredBy, multiplexer.HandedOffUnder, options.MigrationId));

        var active = multiplexer.ActiveRoute;
        var changedString = active.Side == outcome.Side && active.Configuration != options.ConfigurationFor(outcome.Side);

        // Once the directed side is a primary, a connection made in writable-replica mode can become a plain one
        // (INFO, RESP3, role tracking) with the same warm-swap-drain as any switch. Once per directive.
        var promoted = directing is { Promoted: true } && directing.Side == outcome.Side && active is { WritableReplica: true } && active.Side == outcome.Side
            && directing.IssuedAt != reconnectedFor;
        try
        {
            if (active.Side != outcome.Side || changedString || promoted)
            {
                var why = changedString ? "configuration string changed" : promoted ? "the side was promoted; reconnecting as to a primary" : outcome.Reason;
                await multiplexer.SwitchToAsync(outcome.Side, why, token, reconnect: promoted).ConfigureAwait(false);
                if (promoted)
                {
                    reconnectedFor = directing!.IssuedAt; // only once it worked: a failed reconnect is tried again
                }
            }

            if (outcome.Arm is { } arm)
            {
                await multiplexer.ArmAsync(arm, directing!.Epoch, token).ConfigureAwait(false);
            }
            else if (multiplexer.ArmedSide is not null)
            {
                await multiplexer.DisarmAsync().ConfigureAwait(false);
            }

            if (Copy is { } copy)
            {
                var applies = directing is not null && string.Equals(directing.MigrationId, options.MigrationId, StringComparison.Ordinal);
                await copy.ApplyAsync(applies ? directing : null, starting: !evaluatedOnce, token).ConfigureAwait(false);
            }

            retryPending = false;
            evaluatedOnce = true;
        }
        catch (RedisHotSwapException ex)
        {
            retryPending = true;
            evaluatedOnce = true;
            if (throwOnFailure)
            {
                throw;
            }

            Log.SwitchFailed(logger, outcome.Side, ex.Message, multiplexer.ActiveSide, options.RetryInterval);
        }
    }
}
