using RedisHotSwap.Protocol;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests.Coordinator;

// The tool runs as its own process here: exit codes and printed lines are what an operator sees.
public sealed class PreflightTests
{
    [Fact]
    public async Task Check_WhenTargetHoldsData_RefusesWithExitTwoAndChangesNothing()
    {
        await using var migration = await Migration.StartAsync();
        await migration.TargetDb.StringSetAsync("precious", "1");

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "pf", "migrate");

        Assert.Equal(2, exit);
        Assert.Contains("TARGET holds 1 keys that REPLICAOF would erase; empty it (FLUSHALL) or pass --allow-target-data.", Flatten(output));
        await AssertUntouchedAsync(migration, "pf", output);
        Assert.Equal("1", await migration.TargetDb.StringGetAsync("precious"));
    }

    [Fact]
    public async Task Migrate_WhenTargetIsACluster_RefusesReplicationAndNamesCopyMode()
    {
        await using var migration = await Migration.StartToClusterAsync();

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "pf", "migrate");

        Assert.Equal(2, exit);
        Assert.Contains("TARGET is a Redis Cluster, which replication cannot move data into or out of; migrate into a cluster with --sync copy", Flatten(output));
        await AssertUntouchedAsync(migration, "pf", output);
    }

    [Fact]
    public async Task Check_WhenTargetIsReplicaOfAnotherServer_Refuses()
    {
        await using var migration = await Migration.StartAsync();
        await using var other = await RedisServerProcess.StartAsync();
        await migration.TargetAdmin.GetServer(migration.Target.Endpoint).ExecuteAsync("REPLICAOF", "127.0.0.1", other.Port);

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "pf", "check");

        Assert.Equal(2, exit);
        Assert.Contains($"TARGET is already a replica of 127.0.0.1:{other.Port}; detach it", Flatten(output));
        Assert.DoesNotContain(migration.Source.Password, output);
    }

    [Fact]
    public async Task Check_WhenTargetMaxMemoryIsBelowSourceUse_Refuses()
    {
        await using var migration = await Migration.StartAsync();
        await migration.TargetAdmin.GetServer(migration.Target.Endpoint).ConfigSetAsync("maxmemory", "1024");

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "pf", "check");

        Assert.Equal(2, exit);
        Assert.Contains("TARGET's maxmemory (1024 bytes) is below SOURCE's used memory", Flatten(output));
        await AssertUntouchedAsync(migration, "pf", output);
    }

    [Fact]
    public async Task Check_WhenSourceAndTargetAreTheSameServer_Refuses()
    {
        await using var migration = await Migration.StartAsync();

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "pf", "check", "--target", migration.Source.ConfigurationString.Replace("127.0.0.1", "localhost", StringComparison.Ordinal));

        Assert.Equal(2, exit);
        Assert.Contains("SOURCE and TARGET are the same server", Flatten(output));
    }

    [Fact]
    public async Task Check_WithWrongPasswordOrNoServer_RefusesWithoutEchoingSecrets()
    {
        await using var migration = await Migration.StartAsync();

        var wrong = await CoordinatorCli.RunAsync(migration, "pf", "check", "--target", $"{migration.Target.Endpoint},password=not-{migration.Target.Password}");
        var absent = await CoordinatorCli.RunAsync(migration, "pf", "check", "--target", "127.0.0.1:1,password=hunter2,connectTimeout=1000");

        Assert.Equal(2, wrong.ExitCode);
        Assert.Contains("TARGET (", wrong.Output);
        Assert.Contains("rejected the credentials", Flatten(wrong.Output));
        Assert.DoesNotContain(migration.Target.Password, wrong.Output);
        Assert.Equal(2, absent.ExitCode);
        Assert.Contains("is unreachable", Flatten(absent.Output));
        Assert.DoesNotContain("hunter2", absent.Output);
    }

    [Fact]
    public async Task Check_WithAUserDeniedConfig_RefusesNamingWhatItNeeds()
    {
        await using var migration = await Migration.StartAsync();
        await migration.TargetAdmin.GetServer(migration.Target.Endpoint).ExecuteAsync("ACL", "SETUSER", "limited", "on", ">limited-pw", "~*", "&*", "+@all", "-config");

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "pf", "check", "--target", $"{migration.Target.Endpoint},user=limited,password=limited-pw");

        Assert.Equal(2, exit);
        Assert.Contains("TARGET refuses CONFIG", Flatten(output));
        Assert.Contains("connect with a user allowed CONFIG, REPLICAOF, CLIENT and INFO", Flatten(output));
        Assert.DoesNotContain("limited-pw", output);
    }

    [Fact]
    public async Task Help_WithSecretsInTheEnvironment_NeverPrintsThem()
    {
        await using var migration = await Migration.StartAsync();

        var (exit, output) = await CoordinatorCli.RunAsync(migration, "pf", "migrate", "--help");

        Assert.Equal(0, exit);
        Assert.Contains("REDIS_HOTSWAP_SOURCE", output);
        Assert.DoesNotContain(migration.Source.Password, output);
        Assert.DoesNotContain(migration.Target.Password, output);
    }

    private static async Task AssertUntouchedAsync(Migration migration, string id, string output)
    {
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.False(await migration.SourceDb.KeyExistsAsync(MigrationKeys.State(id)));
        Assert.DoesNotContain(migration.Source.Password, output);
        Assert.DoesNotContain(migration.Target.Password, output);
    }

    // Spectre.Console wraps long lines to the terminal width; the assertions read the text whole.
    private static string Flatten(string output) => string.Join(' ', output.Split('\n', StringSplitOptions.TrimEntries));
}
