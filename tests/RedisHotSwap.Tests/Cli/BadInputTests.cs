using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Protocol;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Cli;

/// <summary>
/// The bad-input table: what an operator (the CLI, run as its own process) or an application (the SDK's options)
/// gets wrong. Each case ends in exit code 2 (or a refused start) with exactly one line naming the problem and the
/// remedy, changes nothing on either server, and no password it was given shows up in any output, log line,
/// temporary file or Redis key.
/// </summary>
public sealed class BadInputTests
{
    private const string Secret = "case-secret-7f3a9c";
    // Within one connectTimeout (5 s by default) plus the tool's start on a loaded machine.
    private static readonly TimeSpan Quickly = TimeSpan.FromSeconds(10);

    private sealed record CliCase(string Name, string[] Args, string Expected, Func<Migration, Task>? Setup = null, Func<Migration, Task>? Teardown = null, string Id = "bad");

    private static IEnumerable<CliCase> CliCases(Migration m, RedisServerProcess other)
    {
        var source = m.Source;
        var target = m.Target;
        yield return new("unknown verb", ["frobnicate", "--source", $"{source.Endpoint},password={Secret}"], "Unrecognized command or argument 'frobnicate'");
        yield return new("a secret where the verb goes", [$"{source.Endpoint},password={Secret}", "check"], "Unrecognized command or argument (a value, not shown)");
        yield return new("misspelled option with a secret", ["check", "--sorce", $"{source.Endpoint},password={Secret}"], "'--sorce'");
        yield return new("value that does not parse", ["migrate", "--expect-instances", "many"], "--expect-instances");
        yield return new("negative instances", ["migrate", "--expect-instances", "-1"], "ExpectedInstances");
        yield return new("a choice that is no choice", ["migrate", "--sync", "copy", "--copy-connections", "fast"], "--copy-connections takes one of: own, shared.");
        yield return new("a choice by number", ["migrate", "--sync", "1"], "--sync takes one of: replication, copy.");
        yield return new("two choices at once", ["migrate", "--cutover", "handoff,window"], "--cutover takes one of:");
        yield return new("zero promotion timeout", ["promote", "--promotion-timeout", "0"], "PromotionTimeout: must be between 1 ms and 10 minutes");
        yield return new("huge promotion timeout", ["promote", "--promotion-timeout", "99.00:00:00"], "PromotionTimeout: must be between 1 ms and 10 minutes");
        yield return new("zero sync timeout", ["replicate", "--sync-timeout", "00:00:00"], "SyncTimeout: must be between 1 ms and 7 days");
        yield return new("huge instances timeout", ["cutover", "--instances-timeout", "3650.00:00:00"], "InstancesTimeout: must be between 1 ms and 7 days");
        yield return new("zero max pause", ["migrate", "--max-pause", "0"], "MaxPause: must be between 10 ms and 1 minute");
        yield return new("overlong migration id", ["check"], "MigrationId: must be 1 to 64 letters", Id: new string('x', 100_000));
        yield return new("migration id with spaces and slashes", ["check"], "MigrationId: must be 1 to 64 letters", Id: "orders/2026 11");
        yield return new("malformed configuration string", ["check", "--source", $"{source.Endpoint},password={Secret},connectTimeout=soon"], "SOURCE is not a valid StackExchange.Redis configuration string");
        yield return new("configuration string without a server", ["check", "--source", $"password={Secret}"], "must name exactly one server");
        yield return new("redis:// URI with a password", ["check", "--source", $"redis://:{Secret}@{source.Endpoint}"], "SOURCE is given as a URI");
        yield return new("rediss:// URI with user and password", ["check", "--target", $"rediss://admin:{Secret}@{target.Endpoint}/0"], "TARGET is given as a URI");
        yield return new("TLS against a plain server", ["check", "--source", $"{source.ConfigurationString},ssl=true"], "did not complete a TLS handshake");
        yield return new("wrong password", ["check", "--target", $"{target.Endpoint},password={Secret}"], "rejected the credentials");
        yield return new("wrong user", ["check", "--target", $"{target.Endpoint},user=nobody,password={Secret}"], "rejected the credentials");
        yield return new("no server there", ["check", "--target", $"127.0.0.1:1,password={Secret},connectTimeout=1000"], "is unreachable");
        yield return new("the same server under another name", ["check", "--target", source.ConfigurationString.Replace("127.0.0.1", "localhost", StringComparison.Ordinal)], "SOURCE and TARGET are the same server");
        yield return new("TARGET holds data", ["migrate"], "TARGET holds 1 keys that REPLICAOF would erase",
            mm => mm.TargetDb.StringSetAsync("precious", "1"), mm => mm.TargetDb.KeyDeleteAsync("precious"));
        yield return new("TARGET replicates another server", ["replicate"], $"TARGET is already a replica of 127.0.0.1:{other.Port}",
            mm => mm.TargetAdmin.GetServer(target.Endpoint).ExecuteAsync("REPLICAOF", "127.0.0.1", other.Port),
            mm => mm.TargetAdmin.GetServer(target.Endpoint).ExecuteAsync("REPLICAOF", "NO", "ONE"));
        yield return new("migration id in use", ["abort"], "is being run by another coordinator: 'migrate' on host ops-box, pid 4242",
            mm => mm.SourceDb.StringSetAsync(MigrationKeys.Lease("bad"), new LeaseHolder("token", "ops-box", 4242, "migrate", DateTimeOffset.UtcNow).ToJson(), TimeSpan.FromMinutes(1)),
            mm => mm.SourceDb.KeyDeleteAsync(MigrationKeys.Lease("bad")));
    }

    [Fact]
    public async Task Cli_BadInput_ExitsTwoWithOneLineNamingProblemAndRemedy_ChangesNothing_AndNeverShowsAPassword()
    {
        var started = DateTime.UtcNow;
        await using var migration = await Migration.StartAsync();
        await using var other = await RedisServerProcess.StartAsync();
        var secrets = new[] { Secret, migration.Source.Password, migration.Target.Password };
        var failures = new List<string>();
        var cases = CliCases(migration, other).ToArray();

        foreach (var c in cases)
        {
            if (c.Setup is not null)
            {
                await c.Setup(migration);
            }

            var before = await SnapshotAsync(migration);
            var clock = Stopwatch.StartNew();
            var (exit, output) = await CoordinatorCli.RunAsync(migration, c.Id, c.Args);
            var elapsed = clock.Elapsed;
            var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var after = await SnapshotAsync(migration);
            if (c.Teardown is not null)
            {
                await c.Teardown(migration);
            }

            void Fail(string why) => failures.Add($"{c.Name}: {why}; output: {Masked(output, secrets)}");
            if (exit != 2)
            {
                Fail($"exit {exit}");
            }

            if (lines.Length != 1)
            {
                Fail($"{lines.Length} lines");
            }
            else if (!lines[0].Contains(c.Expected, StringComparison.Ordinal))
            {
                Fail($"no '{c.Expected}'");
            }

            if (lines.Length == 1 && !Remedy(lines[0]))
            {
                Fail("no remedy");
            }

            if (secrets.FirstOrDefault(s => output.Contains(s, StringComparison.Ordinal)) is { } shown)
            {
                Fail($"a password is shown ({Array.IndexOf(secrets, shown)})");
            }

            if (before != after)
            {
                Fail("the servers changed");
            }

            if (elapsed > Quickly)
            {
                Fail($"took {elapsed.TotalSeconds:0.0} s");
            }
        }

        Assert.True(cases.Length >= 20);
        Assert.True(failures.Count == 0, string.Join('\n', failures));
        await AssertNoSecretStoredAsync(migration, secrets, started);
    }

    public static TheoryData<string, string, string, string> SdkCases() => new()
    {
        { "malformed string", $"127.0.0.1:1,password={Secret},connectTimeout=soon", "{target}", "RedisHotSwap:Source is not a valid StackExchange.Redis configuration string" },
        { "redis:// URI", $"redis://:{Secret}@127.0.0.1:1", "{target}", "RedisHotSwap:Source is a URI" },
        { "overlong migration id", "{source}", "{target}", "RedisHotSwap:MigrationId is out of range: must be 1 to 64 letters" },
        { "TLS against a plain server", "{source},ssl=true,connectTimeout=1000", "{target}", "did not answer over TLS" },
        { "wrong password", $"{{endpoint}},password={Secret},connectTimeout=1000", "{target}", "did not answer" },
        { "the same server under another name", "{source}", "{sourceAsLocalhost}", "name the same server" },
    };

    [Theory]
    [MemberData(nameof(SdkCases))]
    public async Task Sdk_BadOptions_RefuseToStartWithOneLineAndNoPassword(string name, string source, string target, string expected)
    {
        var started = DateTime.UtcNow;
        await using var migration = await Migration.StartAsync();
        string Fill(string s) => s.Replace("{source}", migration.Source.ConfigurationString, StringComparison.Ordinal)
            .Replace("{target}", migration.Target.ConfigurationString, StringComparison.Ordinal)
            .Replace("{endpoint}", migration.Source.Endpoint, StringComparison.Ordinal)
            .Replace("{sourceAsLocalhost}", migration.Source.ConfigurationString.Replace("127.0.0.1", "localhost", StringComparison.Ordinal), StringComparison.Ordinal);
        var settings = new Dictionary<string, string?>
        {
            ["RedisHotSwap:Source"] = Fill(source),
            ["RedisHotSwap:Target"] = Fill(target),
            ["RedisHotSwap:MigrationId"] = name == "overlong migration id" ? new string('x', 100_000) : "bad",
        };
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection()
            .AddLogging(b => b.AddFakeLogging().SetMinimumLevel(LogLevel.Trace))
            .AddRedisHotSwap(configuration.GetSection("RedisHotSwap"))
            .BuildServiceProvider();
        var logs = services.GetFakeLogCollector();
        var before = await SnapshotAsync(migration);
        var clock = Stopwatch.StartNew();
        string message;
        try
        {
            var ex = Assert.ThrowsAny<Exception>(() => services.GetRequiredService<IConnectionMultiplexer>());
            message = ex is OptionsValidationException validation ? Assert.Single(validation.Failures) : ex.Message;
        }
        finally
        {
            await services.DisposeAsync();
        }

        var secrets = new[] { Secret, migration.Source.Password, migration.Target.Password };
        Assert.True(clock.Elapsed < Quickly, $"{name}: took {clock.Elapsed.TotalSeconds:0.0} s");
        Assert.Single(message.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(expected, message);
        Assert.True(Remedy(message), message);
        var everything = message + string.Join('\n', logs.GetSnapshot().Select(r => $"{r.Message} {r.Exception}"));
        Assert.DoesNotContain(secrets, s => everything.Contains(s, StringComparison.Ordinal));
        Assert.Equal(before, await SnapshotAsync(migration));
        await AssertNoSecretStoredAsync(migration, secrets, started);
    }

    // A remedy is an instruction: every refusal here says what to give, check, pass, fix or run.
    private static bool Remedy(string line) =>
        new[] { "give ", "check ", "Check ", "pass ", "fix ", "Run ", "run ", "choose ", "point ", "remove ", "detach ", "empty it", "let it finish", "set it", "Pass it" }
            .Any(word => line.Contains(word, StringComparison.Ordinal));

    private static string Masked(string text, IEnumerable<string> secrets) =>
        secrets.Aggregate(text.Length > 2000 ? text[..2000] : text, (t, s) => t.Replace(s, "<password>", StringComparison.Ordinal));

    /// <summary>Roles, the settings a coordinator changes, and every key with its value and time-to-live, on both servers.</summary>
    private static async Task<string> SnapshotAsync(Migration migration)
    {
        var lines = new List<string>();
        foreach (var (name, admin) in new[] { ("SOURCE", migration.SourceAdmin), ("TARGET", migration.TargetAdmin) })
        {
            var server = admin.GetServer(admin.GetEndPoints()[0]);
            var replication = (string)(await admin.GetDatabase().ExecuteAsync("INFO", "replication"))!;
            lines.AddRange(replication.Split('\n').Where(l => l.StartsWith("role:", StringComparison.Ordinal) || l.StartsWith("master_host:", StringComparison.Ordinal)).Select(l => $"{name} {l.Trim()}"));
            foreach (var setting in new[] { "min-replicas-to-write", "min-replicas-max-lag", "replica-read-only", "masterauth", "masteruser", "maxmemory" })
            {
                lines.Add($"{name} {setting}={(await server.ConfigGetAsync(setting)).FirstOrDefault().Value}");
            }

            foreach (var db in new[] { 0, 1 })
            {
                await foreach (var key in server.KeysAsync(db, "*"))
                {
                    var value = await admin.GetDatabase(db).KeyDumpAsync(key);
                    lines.Add($"{name} db{db} {key} {Convert.ToBase64String(value ?? [])} ttl={(await admin.GetDatabase(db).KeyTimeToLiveAsync(key)).HasValue}");
                }
            }
        }

        lines.Sort(StringComparer.Ordinal);
        return string.Join('\n', lines);
    }

    /// <summary>No key on either server and no temporary file written since <paramref name="since"/> holds a password (a server's own redis.conf aside).</summary>
    private static async Task AssertNoSecretStoredAsync(Migration migration, string[] secrets, DateTime since)
    {
        foreach (var admin in new[] { migration.SourceAdmin, migration.TargetAdmin })
        {
            var server = admin.GetServer(admin.GetEndPoints()[0]);
            foreach (var db in new[] { 0, 1 })
            {
                await foreach (var key in server.KeysAsync(db, "*"))
                {
                    var dump = System.Text.Encoding.Latin1.GetString(await admin.GetDatabase(db).KeyDumpAsync(key) ?? []);
                    Assert.DoesNotContain(secrets, s => dump.Contains(s, StringComparison.Ordinal) || key.ToString().Contains(s, StringComparison.Ordinal));
                }
            }
        }

        foreach (var file in new DirectoryInfo(Path.GetTempPath()).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true }))
        {
            // Empty ones skipped: a pipe or a socket (which a read would wait on forever) holds nothing.
            if (file.LastWriteTimeUtc < since || file.Length is 0 or > 1_000_000 || file.Name == "redis.conf")
            {
                continue;
            }

            string text;
            try
            {
                text = await File.ReadAllTextAsync(file.FullName);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            Assert.False(secrets.Any(s => text.Contains(s, StringComparison.Ordinal)), $"{file.FullName} holds a password");
        }
    }
}
