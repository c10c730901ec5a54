using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Forwarding;

/// <summary>
/// Decides whether a failed command may be sent again on the active route, and does it.
/// </summary>
/// <remarks>
/// Only failures that prove the command never ran are replayed: the connection was already closed, the command was
/// still waiting to be written, or the server refused it as read-only or for want of replicas (a retired SOURCE is fenced that way). A command that may have run (timed out after
/// it was sent, for example) surfaces as it would without RedisHotSwap: replaying it could apply a write twice.
/// </remarks>
internal static class Replay
{
    public static bool IsUnsent(Exception exception) => exception switch
    {
        ObjectDisposedException => true,
        RedisConnectionException connection => connection.CommandStatus is CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog,
        RedisServerException server => server.Kind is RedisErrorKind.ReadOnly or RedisErrorKind.NoReplicas,
        _ => false,
    };

    public static async Task Async(Task first, Func<Task> again, HotSwapTelemetry telemetry)
    {
        try
        {
            await first.ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnsent(ex))
        {
            telemetry.CommandRetried();
            await again().ConfigureAwait(false);
        }
    }

    public static async Task<T> Async<T>(Task<T> first, Func<Task<T>> again, HotSwapTelemetry telemetry)
    {
        try
        {
            return await first.ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnsent(ex))
        {
            telemetry.CommandRetried();
            return await again().ConfigureAwait(false);
        }
    }
}
