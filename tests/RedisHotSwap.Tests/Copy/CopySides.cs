using RedisHotSwap.Coordinator.Copy;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Testing;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Copy;

/// <summary>Two fresh servers and the coordinator's admin connection to each, as the copy's unit-level tests use them.</summary>
internal sealed class CopySides : IAsyncDisposable
{
    private CopySides(RedisServerProcess source, RedisServerProcess target, RedisNode from, RedisNode to) =>
        (Source, Target, From, To) = (source, target, from, to);

    public RedisServerProcess Source { get; }

    public RedisServerProcess Target { get; }

    /// <summary>The admin connection to SOURCE.</summary>
    public RedisNode From { get; }

    /// <summary>The admin connection to TARGET.</summary>
    public RedisNode To { get; }

    /// <param name="sourceSettings">SOURCE's extra settings.</param>
    /// <param name="sourceConfiguration">How the coordinator names SOURCE; its configuration string by default.</param>
    public static async Task<CopySides> StartAsync(string[]? sourceSettings = null, Func<RedisServerProcess, string>? sourceConfiguration = null)
    {
        var started = new List<IAsyncDisposable>();
        try
        {
            var source = await RedisServerProcess.StartAsync(settings: sourceSettings);
            started.Add(source);
            var target = await RedisServerProcess.StartAsync();
            started.Add(target);
            var from = await RedisNode.ConnectAsync("SOURCE", sourceConfiguration?.Invoke(source) ?? source.ConfigurationString, CancellationToken.None);
            started.Add(from);
            var to = await RedisNode.ConnectAsync("TARGET", target.ConfigurationString, CancellationToken.None);
            return new CopySides(source, target, from, to);
        }
        catch
        {
            foreach (var part in Enumerable.Reverse(started))
            {
                await part.DisposeAsync();
            }

            throw;
        }
    }

    /// <summary>A copier between the two sides, over the copy's own connections or through StackExchange.Redis.</summary>
    public KeyCopier Copier(bool lanes = true, long bigKeyBytes = 8L << 20) =>
        new(From.Connection, To.Connection, lanes ? CopyLanes.For(From, To) : null) { BigKeyBytes = bigKeyBytes };

    /// <summary>Writes <c>k:0</c> to <c>k:{count - 1}</c> on SOURCE, each holding its number.</summary>
    public Task SeedAsync(int count)
    {
        var db = From.Connection.GetDatabase();
        return Task.WhenAll(Enumerable.Range(0, count).Select(i => db.StringSetAsync($"k:{i}", i)));
    }

    /// <summary>The names <see cref="SeedAsync"/> wrote, from <c>k:{start}</c>.</summary>
    public static RedisKey[] Keys(int start, int count) => [.. Enumerable.Range(start, count).Select(i => (RedisKey)$"k:{i}")];

    public void Deconstruct(out RedisServerProcess source, out RedisServerProcess target, out RedisNode from, out RedisNode to) =>
        (source, target, from, to) = (Source, Target, From, To);

    public async ValueTask DisposeAsync()
    {
        await To.DisposeAsync();
        await From.DisposeAsync();
        await Target.DisposeAsync();
        await Source.DisposeAsync();
    }
}
