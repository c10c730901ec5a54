using System.Net;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

// IServer handles: an endpoint read from one side stays usable after a switch to the other (see SwappableServer).
internal sealed partial class HotSwapConnectionMultiplexer
{
    // The routes most recently active, newest first: enough to resolve an endpoint read just before a few switches.
    private const int RememberedRoutes = 4;
    private readonly Lock routesGate = new();
    private HotSwapRoute[] recentRoutes = [];

    IServer IConnectionMultiplexer.GetServer(EndPoint endpoint, object? asyncState) => ServerFor(endpoint, asyncState);

    IServer IConnectionMultiplexer.GetServer(string host, int port, object? asyncState) =>
        ServerFor(EndPointCollection.TryParse($"{host}:{port}") ?? new DnsEndPoint(host, port), asyncState);

    IServer IConnectionMultiplexer.GetServer(string hostAndPort, object? asyncState) =>
        ServerFor(EndPointCollection.TryParse(hostAndPort) ?? throw new ArgumentException($"'{hostAndPort}' is not an endpoint; give it as host:port.", nameof(hostAndPort)), asyncState);

    IServer IConnectionMultiplexer.GetServer(IPAddress host, int port) => ServerFor(new IPEndPoint(host, port), asyncState: null);

    IServer IConnectionMultiplexer.GetServer(RedisKey key, object? asyncState, CommandFlags flags) =>
        new SwappableServer(this, active.Multiplexer.GetServer(key, asyncState, flags), asyncState);

    IServer[] IConnectionMultiplexer.GetServers() =>
        Array.ConvertAll(active.Multiplexer.GetServers(), server => (IServer)new SwappableServer(this, server, asyncState: null));

    /// <summary>Records a route that takes traffic, so that endpoints read from it still resolve after it retires.</summary>
    private void RememberRoute(HotSwapRoute route)
    {
        lock (routesGate)
        {
            recentRoutes = [route, .. recentRoutes.Take(RememberedRoutes - 1)];
        }
    }

    private SwappableServer ServerFor(EndPoint endpoint, object? asyncState)
    {
        var current = active;
        var server = current.ServerAt(endpoint, asyncState)
            ?? Volatile.Read(ref recentRoutes).Select(route => route.ServerAt(endpoint, asyncState)).FirstOrDefault(s => s is not null)
            ?? current.Multiplexer.GetServer(endpoint, asyncState); // an endpoint no side had: the client's own error

        return new SwappableServer(this, server, asyncState);
    }
}
