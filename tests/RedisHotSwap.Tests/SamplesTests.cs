using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests;

/// <summary>The samples a developer copies from, run as they are against real servers.</summary>
public sealed class SamplesTests
{
    [Fact]
    public async Task WebApi_WithTheFlagOn_CachesOnTargetAndReportsItsSideInHealth()
    {
        await using var migration = await Migration.StartAsync();
        await using var app = SampleProcess.Start("RedisHotSwap.Samples.WebApi", new Dictionary<string, string>
        {
            ["RedisHotSwap__Source"] = migration.Source.ConfigurationString,
            ["RedisHotSwap__Target"] = migration.Target.ConfigurationString,
            ["feature_management__feature_flags__0__enabled"] = "true",
            ["ASPNETCORE_URLS"] = "http://127.0.0.1:0",
        });
        var listening = await app.LineAsync("Now listening on: ");
        using var http = new HttpClient { BaseAddress = new Uri(listening[(listening.IndexOf("http://", StringComparison.Ordinal))..].Trim()) };

        using var put = await http.PutAsJsonAsync("/carts/42", new { items = new[] { "tea" } });
        var health = JsonNode.Parse(await http.GetStringAsync("/health"))!;
        var cart = await http.GetStringAsync("/carts/42");

        Assert.Equal(HttpStatusCode.NoContent, put.StatusCode);
        Assert.Equal("Healthy", health["status"]!.GetValue<string>());
        Assert.Equal("Target", health["side"]!.GetValue<string>());
        Assert.Equal(0, health["generation"]!.GetValue<long>());
        Assert.Contains("tea", cart);
        Assert.True(await migration.TargetDb.KeyExistsAsync("cart:42"));
        Assert.False(await migration.SourceDb.KeyExistsAsync("cart:42"));
        Assert.DoesNotContain(migration.Target.Password, app.Output);
    }

    [Fact]
    public async Task Worker_WritesThroughTheSwappableConnection()
    {
        await using var migration = await Migration.StartAsync();
        await using var worker = SampleProcess.Start("RedisHotSwap.Samples.Worker", new Dictionary<string, string>
        {
            ["RedisHotSwap__Source"] = migration.Source.ConfigurationString,
            ["RedisHotSwap__Target"] = migration.Target.ConfigurationString,
        });

        var tick = await worker.LineAsync("tick 1 written to");

        Assert.Contains("written to Source", tick);
        Assert.Equal(1, (long)await migration.SourceDb.StringGetAsync("worker:ticks"));
        Assert.False(await migration.TargetDb.KeyExistsAsync("worker:ticks"));
        Assert.DoesNotContain(migration.Source.Password, worker.Output);
    }

    [Fact]
    public async Task Demo_SmallRun_MigratesWithoutErrorsAndWritesItsReport()
    {
        var output = Directory.CreateTempSubdirectory("redis-hotswap-demo-test-");
        try
        {
            await using var demo = SampleProcess.Start("RedisHotSwap.Demo", new Dictionary<string, string>(), "--instances", "2", "--keys", "2000", "--output", output.FullName);

            var exit = await demo.ExitCodeAsync(TimeSpan.FromMinutes(3));

            Assert.True(exit == 0, demo.Output);
            var report = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(output.FullName, "report.json")))!;
            Assert.Equal(2, report["instances"]!.GetValue<int>());
            Assert.Equal(0, report["errors"]!.GetValue<long>());
            Assert.Equal(0, report["missingAcknowledgedWrites"]!.GetValue<long>());
            Assert.True(report["acknowledgedWrites"]!.GetValue<long>() > 0);
            Assert.Equal("handoff", report["cutover"]!.GetValue<string>()); // the default where both servers support it
            Assert.Contains(report["phases"]!.AsArray(), p => p!["name"]!.GetValue<string>() == "Arming");
            Assert.True(report["handoffPauseMs"]!.GetValue<double>() > 0);
            Assert.True(report["keys"]!["target"]!["db1"]!.GetValue<long>() > 0); // the seeded second database moved too
            var png = await File.ReadAllBytesAsync(Path.Combine(output.FullName, "report.png"));
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }
        finally
        {
            output.Delete(recursive: true);
        }
    }
}
