using RedisHotSwap.Forwarding;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// An <see cref="IDatabase"/> that sends each command to the side active at the moment of the call, so a handle
/// cached before a switch (as <c>RedisCache</c> does) follows it. The members are generated.
/// </summary>
[GenerateForwarding(typeof(IDatabase))]
internal sealed partial class SwappableDatabase(HotSwapConnectionMultiplexer owner, int database, object? state)
    : Forwarder<IDatabase>(owner), IDatabase
{
    public IConnectionMultiplexer Multiplexer => Owner;

    public override string ToString() => $"db{database} on {Owner}";

    /// <summary>A transaction built on the connection active when it executes, and sent again when a handoff refused it unrun.</summary>
    public ITransaction CreateTransaction(object? asyncState = null) => new SwappableTransaction(Owner, database, asyncState ?? state);

    ITransactionAsync IDatabaseAsync.CreateTransaction(object? asyncState) => CreateTransaction(asyncState);

    /// <summary>A batch sent on the connection active when it executes; a command of it refused unrun by a handoff is sent again on its own.</summary>
    public IBatch CreateBatch(object? asyncState = null) => new SwappableBatch(Owner, database, asyncState ?? state);

    private protected override IDatabase Open(HotSwapRoute route) => route.Multiplexer.GetDatabase(database, state);
}
