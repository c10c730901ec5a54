using System.Net;
using RedisHotSwap.Forwarding;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// An <see cref="IServer"/> of the swappable multiplexer: it names one endpoint, as StackExchange.Redis's does, and
/// sends each command through whichever live connection reaches that endpoint. The members are generated.
/// </summary>
/// <remarks>
/// An endpoint of the active side is served by the active connection, and keeps being served after a switch away and
/// back. An endpoint of a side that has been retired (obtained from <c>GetEndPoints()</c> just before a switch, say)
/// is not redirected to the other server, which would run <c>FLUSHDB</c> or <c>KEYS</c> somewhere the caller never
/// named: it keeps the server of the retired connection, which reports <see cref="IServer.IsConnected"/> false and
/// fails its commands as a closed connection does, until that side is active again.
/// </remarks>
[GenerateForwarding(typeof(IServer))]
internal sealed partial class SwappableServer : Forwarder<IServer>, IServer
{
    private readonly EndPoint endpoint;
    private readonly object? asyncState;
    private readonly IServer origin;

    public SwappableServer(HotSwapConnectionMultiplexer owner, IServer origin, object? asyncState)
        : base(owner)
    {
        this.origin = origin;
        this.asyncState = asyncState;
        endpoint = origin.EndPoint;
    }

    public IConnectionMultiplexer Multiplexer => Owner;

    public override string ToString() => $"{EndPointCollection.ToString(endpoint)} on {Owner}";

    private protected override IServer Open(HotSwapRoute route) => route.ServerAt(endpoint, asyncState) ?? origin;
}
