using System.Globalization;
using System.Text.Json.Nodes;
using RedisHotSwap.Protocol;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests.Cli;

/// <summary>What a person or a script reads from <c>redis-hotswap</c>, run as its own process against real servers.</summary>
public sealed class CliTests
{
    [Fact]
    public async Task Replicate_WhenSourceDoesNotAnswerInTime_PrintsOneLineWithTheRemedyAndNoStackTrace()
    {
        await using var migration = await Migration.StartAsync();
        // Writes wait on SOURCE (its reads do not), so the coordinator connects and then times out writing its state.
        await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ExecuteAsync("CLIENT", "PAUSE", "60000", "WRITE");
        try
        {
            var (exit, output) = await CoordinatorCli.RunAsync(migration, "slow", "replicate", "--source", $"{migration.Source.ConfigurationString},syncTimeout=300");

            Assert.Equal(1, exit);
            Assert.Contains("did not answer in time", output);
            Assert.Contains("next: Check both servers' load", output);
            Assert.DoesNotContain("   at ", output);
            Assert.DoesNotContain(migration.Source.Password, output);
        }
        finally
        {
            await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ExecuteAsync("CLIENT", "UNPAUSE");
        }
    }

    [Fact]
    public async Task MigrateDryRun_PrintsThePlanAndChangesNothing()
    {
        await using var migration = await Migration.StartAsync();

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "dry", "migrate", "--dry-run", "--expect-instances", "3");

        Assert.Equal(0, exit);
        Assert.Contains("3. hand off:", output);
        Assert.Contains("Nothing was changed.", output);
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.False(await migration.SourceDb.KeyExistsAsync(MigrationKeys.State("dry")));
    }

    [Fact]
    public async Task StatusJson_CarriesIsoTimestampsAndSeconds()
    {
        await using var migration = await Migration.StartAsync();

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "json", "status", "--json");

        Assert.Equal(0, exit);
        var line = Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var json = JsonNode.Parse(line)!;
        Assert.Equal("done", json["event"]!.GetValue<string>());
        var time = DateTimeOffset.ParseExact(json["time"]!.GetValue<string>(), "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        Assert.Equal(TimeSpan.Zero, time.Offset);
        Assert.True(json["elapsedSeconds"]!.GetValue<double>() > 0);
    }

    [Fact]
    public async Task ParseError_WithJson_IsOneRefusedEventWithItsTime_AndExitTwo()
    {
        await using var migration = await Migration.StartAsync();

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "json", "status", "--json", "--sorce", $"{migration.Source.Endpoint},password=hunter2");

        Assert.Equal(2, exit);
        var json = JsonNode.Parse(Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries)))!;
        Assert.Equal("refused", json["event"]!.GetValue<string>());
        DateTimeOffset.ParseExact(json["time"]!.GetValue<string>(), "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        Assert.Contains("'--sorce'", json["problems"]![0]!.GetValue<string>());
        Assert.DoesNotContain("hunter2", output);
    }

    [Fact]
    public async Task AnyVerb_WithoutMigrationId_NamesTheOptionAndTheVariable()
    {
        await using var migration = await Migration.StartAsync();

        var (exit, output) = await CoordinatorCli.RunAsync(migration, string.Empty, "status");

        Assert.Equal(2, exit);
        Assert.Contains("--migration", output);
        Assert.Contains("REDIS_HOTSWAP_MIGRATION", output);
    }
}
