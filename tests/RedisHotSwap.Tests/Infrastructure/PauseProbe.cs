using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>
/// Shows whether a server holds commands behind a <c>CLIENT PAUSE ... WRITE</c>: a PUBLISH (no write, so a seal does
/// not refuse it first, as it does a write) waits there, and the server lists its client as blocked.
/// </summary>
internal sealed class PauseProbe : IAsyncDisposable
{
    private const string Name = "pause-probe";
    private readonly ConnectionMultiplexer connection;

    private PauseProbe(ConnectionMultiplexer connection, Task published)
    {
        this.connection = connection;
        Published = published;
    }

    /// <summary>The PUBLISH: it completes once the pause ends.</summary>
    public Task Published { get; }

    public static async Task<PauseProbe> SendAsync(RedisServerProcess server)
    {
        var connection = await ConnectionMultiplexer.ConnectAsync($"{server.ConfigurationString},name={Name},asyncTimeout=60000");
        return new PauseProbe(connection, connection.GetSubscriber().PublishAsync(RedisChannel.Literal(Name), "held"));
    }

    /// <summary>Waits until <paramref name="admin"/>'s server lists the PUBLISH as held; throws if the pause let it through.</summary>
    public async Task HeldAsync(IServer admin)
    {
        await Eventually.TrueAsync(async () => (await admin.ClientListAsync()).Any(c => c.Name == Name && c.Flags.HasFlag(ClientFlags.Blocked)) || Published.IsCompleted,
            "a PUBLISH to be held by the pause");
        Assert.False(Published.IsCompleted, "the PUBLISH went through: no pause holds it");
    }

    public async ValueTask DisposeAsync() => await connection.DisposeAsync();
}
