using System.Net.Sockets;
using System.Reflection;
using RedisHotSwap.Coordinator.Copy;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Copy;

/// <summary>
/// The copy under what key names and networks do: two keys that share one temporary key, an idle connection dropped
/// without a word, replies split at every byte.
/// </summary>
public sealed class CopyLaneFaultTests
{
    // "x" and "{x}" have one temporary key ("{x}:__redis-hotswap:copying"): their chunked copies in one page must run
    // one after the other, and each key hold its own fields on TARGET.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Copy_TwoBigKeysSharingATemporaryKey_EachHoldsItsOwnValue(bool lanes)
    {
        await using var sides = await CopySides.StartAsync();
        var (_, _, from, to) = sides;
        Assert.Equal(KeyCopier.TemporaryKey("x"), KeyCopier.TemporaryKey("{x}"));
        var db = from.Connection.GetDatabase();
        await db.HashSetAsync("x", [.. Enumerable.Range(0, 5000).Select(i => new HashEntry($"plain:{i}", i))]);
        await db.HashSetAsync("{x}", [.. Enumerable.Range(0, 5000).Select(i => new HashEntry($"tagged:{i}", i))]);

        using var copier = sides.Copier(lanes, bigKeyBytes: 1024);
        await copier.CopyAsync(0, ["x", "{x}"]);

        var target0 = to.Connection.GetDatabase();
        Assert.Equal((await db.HashGetAllAsync("x")).Select(e => e.ToString()).Order(), (await target0.HashGetAllAsync("x")).Select(e => e.ToString()).Order());
        Assert.Equal((await db.HashGetAllAsync("{x}")).Select(e => e.ToString()).Order(), (await target0.HashGetAllAsync("{x}")).Select(e => e.ToString()).Order());
    }

    // A load balancer or NAT in front of a managed service drops an idle flow silently (no RST): the lane's next page
    // then meets no reply at all. Like an idle lane the server closed, it is replaced, before anything is written.
    [Fact]
    public async Task Copy_IdleLaneDroppedSilently_CopiesThePageOnAFreshLane()
    {
        await using var sides = await CopySides.StartAsync();
        var (source, _, from, to) = sides;
        using var proxy = new DroppingProxy(source.Port);
        await using var viaProxy = await RedisNode.ConnectAsync("SOURCE", $"127.0.0.1:{proxy.Port},password={source.Password},asyncTimeout=1000", CancellationToken.None);
        await from.Connection.GetDatabase().StringSetAsync("k", "v");
        using var copier = new KeyCopier(from.Connection, to.Connection, new CopyLanes(viaProxy, to));
        await copier.CopyAsync(0, ["k"]); // the lane is open, then sits idle

        proxy.DropEveryFlow(); // the flows open now get nothing through any more; new ones do
        await copier.CopyAsync(0, ["k"]);
        Assert.Equal("v", await to.Connection.GetDatabase().StringGetAsync("k"));
    }

    private sealed class DroppingProxy : IDisposable
    {
        private readonly TcpListener listener = new(System.Net.IPAddress.Loopback, 0);
        private readonly List<(TcpClient Client, TcpClient Server, CancellationTokenSource Stop)> flows = [];
        private readonly CancellationTokenSource closing = new();

        public DroppingProxy(int serverPort)
        {
            listener.Start();
            _ = AcceptAsync(serverPort);
        }

        public int Port => ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;

        public void DropEveryFlow()
        {
            lock (flows)
            {
                flows.ForEach(f => f.Stop.Cancel());
            }
        }

        public void Dispose()
        {
            closing.Cancel();
            listener.Stop();
            lock (flows)
            {
                flows.ForEach(f => { f.Stop.Cancel(); f.Client.Dispose(); f.Server.Dispose(); });
            }
        }

        private async Task AcceptAsync(int serverPort)
        {
            try
            {
                while (true)
                {
                    var client = await listener.AcceptTcpClientAsync(closing.Token);
                    var server = new TcpClient();
                    await server.ConnectAsync(System.Net.IPAddress.Loopback, serverPort, closing.Token);
                    var stop = new CancellationTokenSource();
                    lock (flows)
                    {
                        flows.Add((client, server, stop));
                    }

                    _ = PumpAsync(client.GetStream(), server.GetStream(), stop.Token);
                    _ = PumpAsync(server.GetStream(), client.GetStream(), stop.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
        }

        // Forwards until dropped; after that it reads and discards, as a middlebox that forgot the flow would.
        private static async Task PumpAsync(Stream from, Stream to, CancellationToken dropped)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                int read;
                while ((read = await from.ReadAsync(buffer)) > 0)
                {
                    if (!dropped.IsCancellationRequested)
                    {
                        await to.WriteAsync(buffer.AsMemory(0, read));
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
            {
            }
        }
    }

    // Every reply a lane parses, delivered one byte per read (a real server's bytes, a stream that hands them on slowly).
    [Fact]
    public async Task Read_RepliesSplitAtEveryByte_ParsedAsWhole()
    {
        await using var server = await RedisServerProcess.StartAsync();
        await using var admin = await ConnectionMultiplexer.ConnectAsync(server.ConfigurationString);
        var db = admin.GetDatabase();
        var binary = Enumerable.Range(0, 70_000).Select(i => (byte)(i % 7 == 0 ? '\r' : i % 5 == 0 ? '\n' : i)).ToArray();
        await db.StringSetAsync("bin", binary, TimeSpan.FromSeconds(100));
        await db.StringSetAsync("empty", "");
        var dump = await db.KeyDumpAsync("bin");

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", server.Port);
        var ctor = typeof(RespConnection).GetConstructor(BindingFlags.NonPublic | BindingFlags.Instance, [typeof(Stream), typeof(string), typeof(TimeSpan)])!;
        using var connection = (RespConnection)ctor.Invoke([new OneByteStream(new NetworkStream(socket, ownsSocket: true)), "SOURCE", TimeSpan.FromSeconds(10)]);
        connection.Write("AUTH"u8.ToArray(), System.Text.Encoding.UTF8.GetBytes(server.Password));
        connection.Write("DUMP"u8.ToArray(), "bin"u8.ToArray());
        connection.Write("GET"u8.ToArray(), "empty"u8.ToArray());
        connection.Write("DUMP"u8.ToArray(), "missing"u8.ToArray());
        connection.Write("PTTL"u8.ToArray(), "missing"u8.ToArray());
        connection.Write("NOSUCHCOMMAND"u8.ToArray());
        connection.Write("GET"u8.ToArray(), "bin"u8.ToArray());
        await connection.FlushAsync();

        Assert.Equal((ReplyKind.Simple, "OK"), await Next());
        var dumped = await connection.ReadAsync();
        Assert.Equal(ReplyKind.Bulk, dumped.Kind);
        Assert.Equal(dump, connection.Bytes(dumped).ToArray());
        Assert.Equal((ReplyKind.Bulk, ""), await Next());
        Assert.Equal(ReplyKind.Nil, (await connection.ReadAsync()).Kind);
        Assert.Equal(-2, (await connection.ReadAsync()).Integer);
        Assert.StartsWith("ERR unknown command", (await Next()).Text, StringComparison.Ordinal);
        var value = await connection.ReadAsync();
        Assert.Equal(binary, connection.Bytes(value).ToArray());

        async Task<(ReplyKind Kind, string Text)> Next()
        {
            var reply = await connection.ReadAsync();
            return (reply.Kind, connection.Message(reply));
        }
    }

    private sealed class OneByteStream(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, 1));
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer[..Math.Min(buffer.Length, 1)], cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);
        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
