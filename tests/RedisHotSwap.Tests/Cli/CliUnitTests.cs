using RedisHotSwap.Cli;

namespace RedisHotSwap.Tests.Cli;

public sealed class CliUnitTests
{
    [Theory]
    [InlineData("migrate", "--expect-instances", "many")]
    [InlineData("frobnicate")]
    [InlineData("status", "--no-such-option")]
    public async Task InvokeAsync_WithACommandLineThatDoesNotParse_ExitsTwo(params string[] args) =>
        Assert.Equal(2, await Commands.InvokeAsync(args));

    [Theory]
    [InlineData("Unrecognized command or argument 'host:1,password=hunter2'.", "Unrecognized command or argument (a value, not shown).", "check", "host:1,password=hunter2")]
    [InlineData("Unrecognized command or argument '--sorce'.", "Unrecognized command or argument '--sorce'.", "check", "--sorce")]
    [InlineData("Unrecognized command or argument 'frobnicate'.", "Unrecognized command or argument 'frobnicate'.", "frobnicate")]
    [InlineData("Cannot parse argument 'hunter2' for option '--expect-instances'.", "Cannot parse argument (a value, not shown) for option '--expect-instances'.", "migrate", "--expect-instances", "hunter2")]
    public void Unechoed_ShowsOptionNamesAndTheVerb_NeverAValue(string message, string expected, params string[] args) =>
        Assert.Equal(expected, Commands.Unechoed(message, args));

    [Theory]
    [InlineData(512, "512 B")]
    [InlineData(64 * 1024, "64.0 KiB")]
    [InlineData(5L * 1024 * 1024 * 1024, "5.0 GiB")]
    public void Bytes_UsesBinaryUnits(long value, string expected) => Assert.Equal(expected, Format.Bytes(value));

    [Fact]
    public void Help_ForEachVerb_ListsOnlyItsOwnOptions()
    {
        var root = Commands.Build();
        var status = root.Subcommands.Single(c => c.Name == "status").Options.Select(o => o.Name).ToArray();
        var migrate = root.Subcommands.Single(c => c.Name == "migrate").Options.Select(o => o.Name).ToArray();

        Assert.Contains("--watch", status);
        Assert.DoesNotContain("--promotion-timeout", status);
        Assert.Contains("--dry-run", migrate);
        Assert.DoesNotContain("--watch", migrate);
    }

    [Fact]
    public void Help_ForAVerb_EndsWithItsExample()
    {
        using var output = new StringWriter();

        var exit = Commands.Build().Parse(["status", "--help"]).Invoke(new System.CommandLine.InvocationConfiguration { Output = output });

        Assert.Equal(0, exit);
        Assert.Contains("Example:", output.ToString());
        Assert.Contains("redis-hotswap status --migration orders-2026-11 --watch", output.ToString());
    }
}
