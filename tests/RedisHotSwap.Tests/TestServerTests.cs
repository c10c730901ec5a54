using RedisHotSwap.Testing;

namespace RedisHotSwap.Tests;

/// <summary>The throwaway servers leave no password on disk: owner-only while they run, removed on every path.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class TestServerTests
{
    [Fact]
    public async Task RedisServerProcess_KeepsItsConfigOwnerOnlyAndRemovesItWhenStoppedOrWhenStartFails()
    {
        var password = Guid.NewGuid().ToString("N");
        var server = await RedisServerProcess.StartAsync(password);
        var config = Assert.Single(ConfigsHolding(password));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(config)!));

        await server.DisposeAsync();
        var failing = Guid.NewGuid().ToString("N");
        await Assert.ThrowsAnyAsync<Exception>(() => RedisServerProcess.StartAsync(failing, ["no-such-directive yes"]));

        Assert.Empty(ConfigsHolding(password));
        Assert.Empty(ConfigsHolding(failing));
    }

    private static string[] ConfigsHolding(string password) =>
        [.. Directory.EnumerateDirectories(Path.GetTempPath(), "redis-hotswap-*")
            .Select(d => Path.Combine(d, "redis.conf"))
            .Where(f => File.Exists(f) && File.ReadAllText(f).Contains(password, StringComparison.Ordinal))];
}
