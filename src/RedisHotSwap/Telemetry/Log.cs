using Microsoft.Extensions.Logging;

namespace RedisHotSwap.Telemetry;

/// <summary>Every log event of the SDK. Configuration strings reach here only through <c>Redaction</c>.</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Connected to {Side} ({Endpoint}){Mode}.")]
    public static partial void Connected(ILogger logger, RedisSide side, string endpoint, string mode);

    [LoggerMessage(2, LogLevel.Information, "Switching Redis traffic from {From} to {To} ({Endpoint}); reason: {Reason}.")]
    public static partial void Switching(ILogger logger, RedisSide from, RedisSide to, string endpoint, string reason);

    [LoggerMessage(3, LogLevel.Information, "Redis traffic now goes to {Side}; the switch took {ElapsedMs:0.0} ms.")]
    public static partial void Switched(ILogger logger, RedisSide side, double elapsedMs);

    [LoggerMessage(4, LogLevel.Error, "Could not switch Redis traffic to {Side}: {Reason}. Traffic stays on {Current}; trying again in {RetryInterval}.")]
    public static partial void SwitchFailed(ILogger logger, RedisSide side, string reason, RedisSide current, TimeSpan retryInterval);

    [LoggerMessage(5, LogLevel.Information, "Retired the connection to {Side} after it drained in {ElapsedMs:0.0} ms.")]
    public static partial void Retired(ILogger logger, RedisSide side, double elapsedMs);

    [LoggerMessage(6, LogLevel.Warning, "The connection to {Side} still had {Outstanding} commands in flight after {DrainTimeout}; closing it anyway.")]
    public static partial void DrainTimedOut(ILogger logger, RedisSide side, long outstanding, TimeSpan drainTimeout);

    [LoggerMessage(7, LogLevel.Error, "Rejected a RedisHotSwap configuration change and kept the previous one: {Failures}")]
    public static partial void ReloadRejected(ILogger logger, string failures);

    [LoggerMessage(9, LogLevel.Warning, "A queue subscription (ISubscriber.Subscribe(channel) without a handler) to {Channel} stays on the server it was made on and ends when that connection is retired; use a handler subscription to follow switches.")]
    public static partial void QueueSubscriptionNotSwappable(ILogger logger, string channel);

    [LoggerMessage(10, LogLevel.Error, "A pub/sub handler for {Channel} threw; the other handlers still ran.")]
    public static partial void HandlerFailed(ILogger logger, Exception exception, string channel);

    [LoggerMessage(11, LogLevel.Error, "Could not evaluate feature flag {Flag}; the side stays as it is.")]
    public static partial void FlagFailed(ILogger logger, Exception exception, string flag);

    [LoggerMessage(12, LogLevel.Error, "A Switched event handler threw; the switch itself completed.")]
    public static partial void SwitchedHandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(13, LogLevel.Warning, "Could not report this instance to the migration coordinator: {Reason}; trying again at the next heartbeat.")]
    public static partial void ReportFailed(ILogger logger, string reason);

    [LoggerMessage(14, LogLevel.Information, "The migration coordinator directs every instance to {Side}: {Reason}.")]
    public static partial void DirectiveReceived(ILogger logger, RedisSide side, string reason);

    [LoggerMessage(15, LogLevel.Warning, "Closing the retired connection to {Side} failed ({Reason}); traffic had already moved.")]
    public static partial void RetireFailed(ILogger logger, RedisSide side, string reason);

    [LoggerMessage(16, LogLevel.Warning, "Could not subscribe {Side} to {Channel} ({Reason}); it is tried again at the next switch or subscription.")]
    public static partial void SubscribeFailed(ILogger logger, string channel, RedisSide side, string reason);

    [LoggerMessage(21, LogLevel.Warning, "{Side} ({Endpoint}) did not answer at start; abortConnect=false, so the application starts and the connection is made when the server comes back (health reports unhealthy until then).")]
    public static partial void StartedDisconnected(ILogger logger, RedisSide side, string endpoint);

    [LoggerMessage(22, LogLevel.Warning, "Could not unsubscribe {Channel} after its queue completed ({Reason}); the server may keep sending to it until the next switch.")]
    public static partial void UnsubscribeFailed(ILogger logger, string channel, string reason);

    [LoggerMessage(17, LogLevel.Information, "Armed for a handoff: a warm connection to {Side} ({Endpoint}) waits; traffic stays where it is.")]
    public static partial void Armed(ILogger logger, RedisSide side, string endpoint);

    [LoggerMessage(18, LogLevel.Warning, "{Side} answered as a replica, but the handoff to the armed side could not be made: {Reason}.")]
    public static partial void HandoffFailed(ILogger logger, RedisSide side, string reason);

    [LoggerMessage(19, LogLevel.Warning, "Ignored a coordinator directive for migration {MigrationId}: {Problem}. The standing directive, if any, stays.")]
    public static partial void DirectiveIgnored(ILogger logger, string migrationId, string problem);

    [LoggerMessage(20, LogLevel.Information, "A switch asked for from code to {Side} waits: the coordinator's directive ({Reason}) outranks it while it stands.")]
    public static partial void CodeRequestOutranked(ILogger logger, RedisSide side, string reason);

    [LoggerMessage(23, LogLevel.Warning, "RedisHotSwap:MigrationId changed from {Previous} to {Current} while the application runs: the coordinator's directives for {Previous} no longer decide this instance's side.")]
    public static partial void MigrationIdChanged(ILogger logger, string previous, string current);

    [LoggerMessage(24, LogLevel.Information, "This instance left migration {Previous} and takes part in {Current}: it reports and follows directives under the new id.")]
    public static partial void MigrationJoined(ILogger logger, string previous, string current);

    [LoggerMessage(25, LogLevel.Debug, "Compiled the handoff's code path ahead of the pause in {Milliseconds:0.0} ms.")]
    public static partial void HandoffPathPrepared(ILogger logger, double milliseconds);

    [LoggerMessage(29, LogLevel.Information, "Copy migration {MigrationId}: this instance tracks its writes on SOURCE (directive {Epoch}).")]
    public static partial void CopyTracking(ILogger logger, string migrationId, long epoch);

    [LoggerMessage(26, LogLevel.Information, "Copy migration {MigrationId}: writes held for the cutover, every earlier write marked (directive {Epoch}).")]
    public static partial void CopyFenced(ILogger logger, string migrationId, long epoch);

    [LoggerMessage(27, LogLevel.Warning, "Copy migration {MigrationId}: {Problem}; the coordinator tries again.")]
    public static partial void CopyProblem(ILogger logger, string migrationId, string problem);

    [LoggerMessage(28, LogLevel.Information, "Copy migration {MigrationId}: write tracking stopped ({Reason}).")]
    public static partial void CopyStopped(ILogger logger, string migrationId, string reason);

    [LoggerMessage(30, LogLevel.Warning, "Migration {MigrationId}: could not ship the keys written on TARGET during the window ({Problem}); an abort may count fewer keys than it discards.")]
    public static partial void WindowMarksProblem(ILogger logger, string migrationId, string problem);

    [LoggerMessage(40, LogLevel.Warning, "Moved to {Side}, a writable replica, without knowing it has every write this instance made on {From} ({Problem}); a write made there just before the switch may reach {Side} after a newer one.")]
    public static partial void WindowOrderUnsure(ILogger logger, RedisSide side, RedisSide from, string problem);
}
