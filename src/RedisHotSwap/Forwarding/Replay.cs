using StackExchange.Redis;

namespace RedisHotSwap.Forwarding;

/// <summary>
/// Decides whether a failed command may be sent again on the active route, and does it.
/// </summary>
/// <remarks>
/// Only failures that prove the command never ran are replayed: the connection was already closed, the command was
/// still waiting to be written, or the server refused it because it is a replica or lacks replicas (a retired or
/// demoted SOURCE answers that way). A command that may have run (timed out after it was sent, for example) surfaces
/// as it would without RedisHotSwap: replaying it could apply a write twice.
/// </remarks>
internal static class Replay
{
    public static bool IsUnsent(Exception exception) => exception switch
    {
        ObjectDisposedException => true,
        RedisConnectionException connection => connection.CommandStatus is CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog,
        RedisTimeoutException timeout => timeout.Commandstatus is CommandStatus.WaitingToBeSent or CommandStatus.WaitingInBacklog,
        RedisServerException server => server.Kind is RedisErrorKind.NoReplicas || IsDemoted(server),
        _ => false,
    };

    /// <summary>
    /// Whether the server refused the command because it is (now) a replica, which proves nothing of it ran:
    /// <c>READONLY</c> (a command, or a script at its first write), <c>EXECABORT</c> (a transaction discarded whole:
    /// a command queued after the server became a replica was refused, or its <c>EXEC</c> was), and <c>UNBLOCKED</c> (a
    /// blocking command released, having taken nothing, when its server became a replica).
    /// </summary>
    public static bool IsDemoted(Exception exception) => exception is RedisServerException server && (
        server.Kind is RedisErrorKind.ReadOnly
        || server.Kind is RedisErrorKind.ExecAbort
        || server.Message.StartsWith("UNBLOCKED", StringComparison.Ordinal));

    /// <summary>The flags without fire-and-forget, for a command that may have to be sent again.</summary>
    public static CommandFlags Acknowledged(CommandFlags flags) => flags & ~CommandFlags.FireAndForget;

    /// <summary>Awaits <paramref name="first"/>; when it failed unsent and <paramref name="canResend"/> agrees, runs <paramref name="again"/>.</summary>
    public static async Task Async(Task first, Func<Task> again, Func<Exception, ValueTask<bool>> canResend)
    {
        try
        {
            await first.ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (IsUnsent(ex))
        {
            if (!await canResend(ex).ConfigureAwait(false))
            {
                throw;
            }
        }

        await again().ConfigureAwait(false);
    }

    /// <summary>Awaits <paramref name="first"/>; when it failed unsent and <paramref name="canResend"/> agrees, runs <paramref name="again"/>.</summary>
    public static async Task<T> Async<T>(Task<T> first, Func<Task<T>> again, Func<Exception, ValueTask<bool>> canResend)
    {
        try
        {
            return await first.ConfigureAwait(false);
        }
        catch (Exception ex) when (IsUnsent(ex))
        {
            if (!await canResend(ex).ConfigureAwait(false))
            {
                throw;
            }
        }

        return await again().ConfigureAwait(false);
    }
}
