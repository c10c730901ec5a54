using System.Buffers.Text;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;
using RedisHotSwap.Protocol;
using StackExchange.Redis;

namespace RedisHotSwap.Coordinator.Copy;

/// <summary>What one reply of a <see cref="RespConnection"/> is; a bulk's bytes stay in the connection's buffer until the next read.</summary>
internal enum ReplyKind
{
    Integer,
    Bulk,
    Nil,
    Simple,
    Error,
}

/// <summary>One RESP2 reply: an integer, or where its bytes lie in the connection's input buffer.</summary>
internal readonly record struct Reply(ReplyKind Kind, long Integer, int Offset, int Length);

/// <summary>
/// One plain TCP connection speaking RESP2, for the backfill's bulk commands only: commands are written into one buffer
/// and sent with one write, replies are parsed in place, and a <c>DUMP</c>'s payload is copied from SOURCE's input
/// buffer straight into TARGET's output buffer. No task, message or array per command: StackExchange.Redis spends several
/// times the CPU of both servers per key on the copy's four commands, on the two cores both servers share with it.
/// </summary>
/// <remarks>
/// Only flat replies (integers, bulk strings, status and errors) are understood: the copy sends no command that answers
/// an array. Any failure of the connection (closed, no reply within the side's <c>asyncTimeout</c>) surfaces as
/// StackExchange.Redis's own exceptions, and the connection is not used again.
/// </remarks>
internal sealed class RespConnection : IDisposable
{
    private const int InitialBuffer = 64 * 1024;
    // StackExchange.Redis's ambient TLS settings, which these connections do not apply.
    private static readonly string[] AmbientCertificates = ["SERedis_IssuerCertPath", "SERedis_ClientCertPfxPath", "SERedis_ClientCertPemPath"];
    private static readonly byte[] Crlf = "\r\n"u8.ToArray();
    private static readonly byte[] Auth = "AUTH"u8.ToArray();
    private static readonly byte[] Ping = "PING"u8.ToArray();
    private static readonly byte[] Client = "CLIENT"u8.ToArray();
    private static readonly byte[] SetName = "SETNAME"u8.ToArray();

    private readonly Stream stream;
    private readonly string name;
    private readonly TimeSpan timeout;
    // The longest a read may wait now: the timeout, or less while a PING checks an idle connection.
    private TimeSpan wait;
    private CancellationTokenSource deadline = new();
    private byte[] output = new byte[InitialBuffer];
    private int written;
    private byte[] input = new byte[InitialBuffer];
    private int start;
    private int end;

    private RespConnection(Stream stream, string name, TimeSpan timeout)
    {
        this.stream = stream;
        this.name = name;
        this.timeout = timeout;
        wait = timeout;
    }

    /// <summary>The database the connection last selected.</summary>
    public int Database { get; private set; }

    /// <summary>The bytes written and not sent yet.</summary>
    public int Pending => written;

    /// <summary>
    /// Whether a side can be reached this way: one server named directly (no cluster, no Sentinel) over TCP, or over TLS checked as StackExchange.Redis checks it
    /// from a configuration string (not where its <c>SERedis_*</c> environment variables add a trusted issuer or a
    /// client certificate), with StackExchange.Redis's default command names.
    /// </summary>
    /// <param name="options">The side's configuration.</param>
    /// <param name="isCluster">Whether the side is a Redis Cluster.</param>
    /// <param name="environment">Reads an environment variable; <see cref="Environment.GetEnvironmentVariable(string)"/> by default.</param>
    public static bool Serves(ConfigurationOptions options, bool isCluster, Func<string, string?>? environment = null) =>
        !isCluster && options.Tunnel is null && options.BeforeSocketConnect is null && string.IsNullOrEmpty(options.ServiceName)
        && (!options.Ssl || AmbientCertificates.All(name => string.IsNullOrEmpty((environment ?? Environment.GetEnvironmentVariable)(name))))
        && options.EndPoints is [DnsEndPoint or IPEndPoint]
        && options.CommandMap.ToString() == CommandMap.Default.ToString();

    /// <summary>Connects, authenticates and names the connection as the coordinator's (where the server allows <c>CLIENT</c>).</summary>
    /// <param name="side">SOURCE or TARGET, for messages.</param>
    /// <param name="host">The host the side's admin connection reached.</param>
    /// <param name="port">Its port.</param>
    /// <param name="options">The side's configuration: credentials and timeouts.</param>
    public static async Task<RespConnection> ConnectAsync(string side, string host, int port, ConfigurationOptions options)
    {
        var name = $"{side} ({host}:{port})";
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };

        // Kept alive between the copy's phases, as idle flows are forgotten by load balancers and NATs after minutes.
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 60);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 10);
        using (var connecting = new CancellationTokenSource(options.ConnectTimeout))
        {
            try
            {
                await socket.ConnectAsync(host, port, connecting.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, $"{name} is unreachable for the copy's connection: {ex.GetType().Name}.");
            }
        }

        Stream stream = new NetworkStream(socket, ownsSocket: true);
        if (options.Ssl)
        {
            stream = await AuthenticateAsync(name, host, stream, options).ConfigureAwait(false);
        }

        var connection = new RespConnection(stream, name, TimeSpan.FromMilliseconds(options.AsyncTimeout));
        try
        {
            // As StackExchange.Redis does: AUTH with the user when there is one, with the password alone otherwise.
            var (user, password) = (options.User, options.Password);
            var authenticates = !string.IsNullOrWhiteSpace(user) || !string.IsNullOrWhiteSpace(password);
            if (!string.IsNullOrWhiteSpace(user))
            {
                connection.Write(Auth, Encoding.UTF8.GetBytes(user), Encoding.UTF8.GetBytes(password ?? string.Empty));
            }
            else if (authenticates)
            {
                connection.Write(Auth, Encoding.UTF8.GetBytes(password!));
            }

            connection.Write(Client, SetName, Encoding.UTF8.GetBytes(ClientNames.Coordinator));
            await connection.FlushAsync().ConfigureAwait(false);
            Array.Clear(connection.output); // no password left in memory the connection keeps
            var refused = authenticates && await connection.ReadAsync().ConfigureAwait(false) is { Kind: ReplyKind.Error };

            // CLIENT renamed away: nothing lists clients there either. A refused AUTH matters only where the server
            // then wants one (it refuses a password it does not require, as StackExchange.Redis lets pass).
            if (await connection.ReadAsync().ConfigureAwait(false) is { Kind: ReplyKind.Error } named && refused
                && connection.Message(named).StartsWith("NOAUTH", StringComparison.Ordinal))
            {
                // The message is the server's, never the password; the admin connection was accepted with the same one.
                throw new RedisConnectionException(ConnectionFailureType.AuthenticationFailure, CommandFlags.None, $"{name} rejected the credentials on the copy's connection.");
            }

            return connection;
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>
    /// TLS as StackExchange.Redis sets it up from a configuration string: <c>sslHost</c> (or the host) as the name to
    /// check, <c>sslProtocols</c>, <c>checkCertificateRevocation</c>, and the system's trusted roots.
    /// </summary>
    private static async Task<Stream> AuthenticateAsync(string name, string host, Stream stream, ConfigurationOptions options)
    {
        var target = string.IsNullOrWhiteSpace(options.SslHost) ? host : options.SslHost;
        var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
        try
        {
            using var handshake = new CancellationTokenSource(options.ConnectTimeout);
            await ssl.AuthenticateAsClientAsync(
                options.SslClientAuthenticationOptions?.Invoke(target) ?? new SslClientAuthenticationOptions
                {
                    TargetHost = target,
                    EnabledSslProtocols = options.SslProtocols ?? SslProtocols.None,
                    CertificateRevocationCheckMode = options.CheckCertificateRevocation ? System.Security.Cryptography.X509Certificates.X509RevocationMode.Online : System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck,
                },
                handshake.Token).ConfigureAwait(false);
            return ssl;
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or SocketException or OperationCanceledException)
        {
            await ssl.DisposeAsync().ConfigureAwait(false);
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, $"{name} did not complete the copy's TLS handshake: {ex.GetType().Name}.");
        }
    }

    /// <summary>Writes <c>SELECT</c> when <paramref name="database"/> is not the one selected; its reply is read by <see cref="ReadSelectedAsync"/>.</summary>
    public bool Select(int database)
    {
        if (database == Database)
        {
            return false;
        }

        WriteHeader(2);
        WriteBulk("SELECT"u8);
        WriteBulk(database);
        Database = database;
        return true;
    }

    /// <summary>Reads the reply of a <see cref="Select"/> that wrote one.</summary>
    public async ValueTask ReadSelectedAsync(bool selected)
    {
        if (selected && await ReadAsync().ConfigureAwait(false) is { Kind: ReplyKind.Error } error)
        {
            throw new RedisConnectionException(ConnectionFailureType.InternalFailure, CommandFlags.None, $"{name} refused SELECT: {Message(error)}");
        }
    }

    /// <summary>Writes <c>PING</c>; <see cref="ReadPongAsync"/> reads its answer.</summary>
    public void WritePing() => Write(Ping);

    /// <summary>
    /// Reads the answer to <see cref="WritePing"/> within <paramref name="within"/> (at most the timeout): a connection
    /// that sat idle may have been dropped without a word (a load balancer's or a NAT's idle timeout), and is then known
    /// dead before anything that writes was sent on it.
    /// </summary>
    /// <exception cref="RedisConnectionException">No answer in time: the connection is not used again.</exception>
    public async ValueTask ReadPongAsync(TimeSpan within)
    {
        wait = within < timeout ? within : timeout;
        try
        {
            if (await ReadAsync().ConfigureAwait(false) is not { Kind: ReplyKind.Simple })
            {
                throw Malformed();
            }
        }
        catch (RedisTimeoutException)
        {
            throw new RedisConnectionException(ConnectionFailureType.SocketFailure, CommandFlags.None, $"{name} did not answer PING within {wait.TotalMilliseconds:0} ms after the copy's connection sat idle.");
        }
        finally
        {
            wait = timeout;
        }
    }

    /// <summary>Writes one command of bulk arguments.</summary>
    public void Write(params ReadOnlySpan<byte[]> arguments)
    {
        WriteHeader(arguments.Length);
        foreach (var argument in arguments)
        {
            WriteBulk(argument);
        }
    }

    /// <summary>Writes a command's array header: <paramref name="count"/> arguments follow.</summary>
    public void WriteHeader(int count)
    {
        Reserve(16);
        output[written++] = (byte)'*';
        WriteNumberLine(count);
    }

    /// <summary>Writes one bulk argument.</summary>
    public void WriteBulk(ReadOnlySpan<byte> value)
    {
        Reserve(value.Length + 32);
        output[written++] = (byte)'$';
        WriteNumberLine(value.Length);
        value.CopyTo(output.AsSpan(written));
        written += value.Length;
        Crlf.CopyTo(output, written);
        written += 2;
    }

    /// <summary>Writes one bulk argument: a number in decimal.</summary>
    public void WriteBulk(long value)
    {
        Span<byte> digits = stackalloc byte[20];
        Utf8Formatter.TryFormat(value, digits, out var length);
        WriteBulk(digits[..length]);
    }

    /// <summary>Sends what was written.</summary>
    public async ValueTask FlushAsync()
    {
        if (written == 0)
        {
            return;
        }

        deadline.CancelAfter(timeout);
        try
        {
            await stream.WriteAsync(output.AsMemory(0, written), deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            throw Failed(ex);
        }

        written = 0;
        ResetDeadline();
    }

    /// <summary>Reads the next reply; a bulk's bytes (see <see cref="Bytes"/>) are valid until the next read.</summary>
    public async ValueTask<Reply> ReadAsync()
    {
        while (true)
        {
            if (TryParse(out var reply, out var needed))
            {
                return reply;
            }

            await FillAsync(needed).ConfigureAwait(false);
        }
    }

    /// <summary>The bytes of a bulk or status reply just read.</summary>
    public ReadOnlySpan<byte> Bytes(Reply reply) => input.AsSpan(reply.Offset, reply.Length);

    /// <summary>An error reply's message.</summary>
    public string Message(Reply reply) => Encoding.UTF8.GetString(Bytes(reply));

    public void Dispose()
    {
        stream.Dispose();
        deadline.Dispose();
    }

    private bool TryParse(out Reply reply, out int needed)
    {
        reply = default;
        var buffered = input.AsSpan(start, end - start);
        var lineEnd = buffered.IndexOf((byte)'\n');
        if (lineEnd < 0)
        {
            needed = buffered.Length + 1;
            return false;
        }

        if (lineEnd < 2 || buffered[lineEnd - 1] != '\r')
        {
            throw Malformed();
        }

        var line = buffered[1..(lineEnd - 1)];
        var headerLength = lineEnd + 1;
        switch (buffered[0])
        {
            case (byte)':':
                reply = new Reply(ReplyKind.Integer, Number(line), 0, 0);
                break;
            case (byte)'+':
                reply = new Reply(ReplyKind.Simple, 0, start + 1, line.Length);
                break;
            case (byte)'-':
                reply = new Reply(ReplyKind.Error, 0, start + 1, line.Length);
                break;
            case (byte)'$':
                var length = Number(line);
                if (length < 0)
                {
                    reply = new Reply(ReplyKind.Nil, 0, 0, 0);
                    break;
                }

                var total = headerLength + length + 2;
                if (buffered.Length < total)
                {
                    needed = (int)total;
                    return false;
                }

                reply = new Reply(ReplyKind.Bulk, 0, start + headerLength, (int)length);
                headerLength = (int)total;
                break;
            default:
                throw Malformed();
        }

        start += headerLength;
        needed = 0;
        return true;
    }

    private long Number(ReadOnlySpan<byte> digits) =>
        Utf8Parser.TryParse(digits, out long value, out var consumed) && consumed == digits.Length ? value : throw Malformed();

    // Makes room for at least `needed` buffered bytes from `start`, then reads what the socket has.
    private async ValueTask FillAsync(int needed)
    {
        if (start > 0 && (start == end || input.Length - start < needed))
        {
            Buffer.BlockCopy(input, start, input, 0, end - start);
            (end, start) = (end - start, 0);
        }

        if (input.Length - start < needed)
        {
            Array.Resize(ref input, Math.Max(needed, input.Length * 2));
        }

        deadline.CancelAfter(wait);
        int read;
        try
        {
            read = await stream.ReadAsync(input.AsMemory(end), deadline.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            throw Failed(ex);
        }

        ResetDeadline();
        if (read == 0)
        {
            throw new RedisConnectionException(ConnectionFailureType.SocketClosed, CommandFlags.None, $"{name} closed the copy's connection.");
        }

        end += read;
    }

    // The operation finished in time; a deadline that fired just after it is replaced, not taken for a timeout.
    private void ResetDeadline()
    {
        if (!deadline.TryReset())
        {
            deadline.Dispose();
            deadline = new CancellationTokenSource();
        }
    }

    private void Reserve(int bytes)
    {
        if (output.Length - written < bytes)
        {
            Array.Resize(ref output, Math.Max(written + bytes, output.Length * 2));
        }
    }

    private void WriteNumberLine(long value)
    {
        Utf8Formatter.TryFormat(value, output.AsSpan(written), out var length);
        written += length;
        Crlf.CopyTo(output, written);
        written += 2;
    }

    private Exception Failed(Exception ex) => ex is OperationCanceledException
        ? new RedisTimeoutException(CommandFlags.None, $"{name} did not answer the copy within {wait.TotalMilliseconds:0} ms (asyncTimeout).", CommandStatus.Sent)
        : new RedisConnectionException(ConnectionFailureType.SocketFailure, CommandFlags.None, $"{name} failed on the copy's connection: {ex.GetType().Name}.");

    private RedisConnectionException Malformed() =>
        new(ConnectionFailureType.ProtocolFailure, CommandFlags.None, $"{name} sent a reply the copy's connection does not understand.");
}
