using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

// No server is needed: validation refuses before anything connects.
public sealed class ValidationTests
{
    [Theory]
    [InlineData("127.0.0.1:1,password=s3cret,connectTimeout=soon", "127.0.0.1:2", "RedisHotSwap:Source is not a valid StackExchange.Redis configuration string")]
    [InlineData("127.0.0.1:1,password=s3cret", "", "RedisHotSwap:Target is empty")]
    [InlineData("127.0.0.1:1,password=s3cret", "password=s3cret", "RedisHotSwap:Target names no server")]
    [InlineData("127.0.0.1:1,password=s3cret", "localhost:1,password=s3cret", "name the same server")]
    public void Resolve_WithBadOptions_FailsWithOneClearLineAndNoSecret(string source, string target, string expected)
    {
        using var services = Build(new() { ["RedisHotSwap:Source"] = source, ["RedisHotSwap:Target"] = target });

        var ex = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IConnectionMultiplexer>());

        var line = Assert.Single(ex.Failures);
        Assert.Contains(expected, line);
        Assert.DoesNotContain("s3cret", ex.Message);
    }

    [Fact]
    public void Resolve_WithFlagButNoFeatureManagement_SaysToRegisterIt()
    {
        using var services = Build(new()
        {
            ["RedisHotSwap:Source"] = "127.0.0.1:1",
            ["RedisHotSwap:Target"] = "127.0.0.1:2",
            ["RedisHotSwap:FeatureFlag"] = "MoveRedis",
        });

        var ex = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IConnectionMultiplexer>());

        Assert.Contains("call services.AddFeatureManagement()", Assert.Single(ex.Failures));
    }

    [Fact]
    public void OptionsToString_MasksPasswords()
    {
        var options = new RedisHotSwapOptions { Source = "a:1,password=s3cret", Target = "b:2,password=t0psecret,ssl=true" };

        var text = options.ToString();

        Assert.DoesNotContain("s3cret", text);
        Assert.DoesNotContain("t0psecret", text);
        Assert.Contains("a:1", text);
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return new ServiceCollection().AddRedisHotSwap(configuration.GetSection("RedisHotSwap")).BuildServiceProvider();
    }
}
