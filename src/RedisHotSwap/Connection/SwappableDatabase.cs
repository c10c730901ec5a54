using RedisHotSwap.Forwarding;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// An <see cref="IDatabase"/> that sends each command to the side active at the moment of the call, so a handle
/// cached before a switch (as <c>RedisCache</c> does) follows it. The members are generated.
/// </summary>
[GenerateForwarding(typeof(IDatabase))]
internal sealed partial class SwappableDatabase(HotSwapConnectionMultiplexer owner, int database, object? asyncState)
    : Forwarder<IDatabase>(owner), IDatabase
{
    public IConnectionMultiplexer Multiplexer => Owner;

    public override string ToString() => $"db{database} on {Owner}";

    private protected override IDatabase Open(HotSwapRoute route) => route.Multiplexer.GetDatabase(database, asyncState);
}
