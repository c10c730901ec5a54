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
/// Watches the options and the feature flag, and asks the multiplexer to switch when the side they name changes.
/// </summary>
/// <remarks>
/// Every notification (options reload, configuration reload, flag poll) only wakes one loop, which evaluates the
/// side and compares it with the side it last acted on. Duplicate and spurious notifications, which configuration
/// providers do send, therefore never cause a second switch. A failed switch is tried again after
/// <see cref="RedisHotSwapOptions.RetryInterval"/>.
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
    private readonly CancellationTokenSource stopping = new();
    private readonly List<IDisposable> registrations = [];
    private readonly Task loop;
    private RedisSide decided;
    private bool retryPending;
    private Directive? directive;
    private DateTimeOffset? reconnectedFor;

    public SwitchTrigger(
        HotSwapConnectionMultiplexer multiplexer,
        RedisSide decided,
        IOptionsMonitor<RedisHotSwapOptions> monitor,
        RedisHotSwapOptionsValidator validator,
        IFeatureManager? features,
        IConfiguration? configuration,
        TimeProvider time,
        ILogger logger)
    {
        this.multiplexer = multiplexer;
        this.decided = decided;
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

        loop = Task.Run(RunAsync);
    }

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

    public async ValueTask DisposeAsync()
    {
        foreach (var registration in registrations)
        {
            registration.Dispose();
        }

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

    /// <summary>The coordinator's directive (null when it has none); it outranks configuration and flag while it stands.</summary>
    public void SetDirective(Directive? value)
    {
        var previous = Interlocked.Exchange(ref directive, value);
        if (previous != value) // by value: every heartbeat reads the same directive anew
        {
            if (value is not null)
            {
                Log.DirectiveReceived(logger, value.Side, value.Reason);
            }

            Wake();
        }
    }

    private void Wake() => wake.Writer.TryWrite(true);

    private async Task RunAsync()
    {
        var token = stopping.Token;
        while (!token.IsCancellationRequested)
        {
            await WaitForWakeAsync(token).ConfigureAwait(false);
            try
            {
                await EvaluateAsync(token).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                if (token.IsCancellationRequested)
                {
                    return; // stopping: a switch cut short by the stop is no failure
                }

                // The loop must outlive any one evaluation: it is what moves the instance.
                retryPending = true;
                Log.SwitchFailed(logger, decided, ex.Message, multiplexer.ActiveSide, multiplexer.Options.RetryInterval);
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

    private async Task EvaluateAsync(CancellationToken token)
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
        var directing = Volatile.Read(ref directive);
        RedisSide side;
        string reason;
        try
        {
            side = directing?.Side ?? await DecideAsync(options, features).ConfigureAwait(false);
            reason = directing is not null ? $"coordinator directive ({directing.Reason})"
                : string.IsNullOrWhiteSpace(options.FeatureFlag) ? "configuration UseTarget"
                : $"feature flag {options.FeatureFlag}";
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.FlagFailed(logger, ex, options.FeatureFlag!);
            return;
        }

        var active = multiplexer.ActiveRoute;
        var changedString = active.Side == side && active.Configuration != options.ConfigurationFor(side);

        // Once TARGET is promoted, a connection made in writable-replica mode can become a plain one (INFO, RESP3,
        // role tracking) with the same warm-swap-drain as any switch. Once per directive.
        var promoted = directing is { Side: RedisSide.Target, Promoted: true } && active is { Side: RedisSide.Target, WritableReplica: true }
            && directing.IssuedAt != reconnectedFor;
        if (side == decided && !retryPending && !changedString && !promoted)
        {
            return; // nothing changed since the last decision; a switch made from code stands
        }

        decided = side;
        try
        {
            var why = changedString ? "configuration string changed" : promoted ? "TARGET was promoted; reconnecting as to a primary" : reason;
            await multiplexer.SwitchToAsync(side, why, token, reconnect: promoted).ConfigureAwait(false);
            retryPending = false;
            if (promoted)
            {
                reconnectedFor = directing!.IssuedAt; // only once it worked: a failed reconnect is tried again
            }
        }
        catch (RedisHotSwapException ex)
        {
            retryPending = true;
            Log.SwitchFailed(logger, side, ex.Message, multiplexer.ActiveSide, options.RetryInterval);
        }
    }
}
