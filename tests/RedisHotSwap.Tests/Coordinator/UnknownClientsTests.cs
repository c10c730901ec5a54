using RedisHotSwap.Coordinator;
using RedisHotSwap.Coordinator.Safety;
using RedisHotSwap.Coordinator.Servers;
using RedisHotSwap.Protocol;
using RedisHotSwap.Testing;
using RedisHotSwap.Tests.Infrastructure;
using StackExchange.Redis;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>Before a promotion the coordinator lists SOURCE's clients and stops while one is no instance, replica or coordinator.</summary>
public sealed class UnknownClientsTests
{
    [Fact]
    public async Task Migrate_WhileARawClientWritesToSource_StopsNamingItsAddress_AndWithTheOptionHandsOff()
    {
        const string id = "unknown-handoff";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using var raw = await ConnectionMultiplexer.ConnectAsync(migration.Source.ConfigurationString);
        var address = await AddressAsync(raw);
        await raw.GetDatabase().StringSetAsync("written-by-someone-nobody-knows", "1");

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1");

        Assert.True(exit == 1, output);
        Assert.Contains($"SOURCE has a client that is no registered instance: {address}, name ", output);
        Assert.Contains("last command set", output);
        Assert.Contains("--allow-unknown-clients", output);
        Assert.DoesNotContain(ClientNames.InstancePrefix, output); // the registered instance is connected too, and accounted for
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication")); // nothing promoted
        Assert.Equal(RedisSide.Source, app.Controller.ActiveSide);

        (exit, output) = await CoordinatorCli.RunAsync(migration, id, "migrate", "--expect-instances", "1", "--allow-unknown-clients");

        Assert.True(exit == 0, output);
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal(RedisSide.Target, app.Controller.ActiveSide);
    }

    [Fact]
    public async Task Promote_InTheWindowCutover_WhileARawClientIsConnected_StopsNamingIt_AndWithTheOptionPromotes()
    {
        const string id = "unknown-window";
        await using var migration = await Migration.StartAsync();
        await using var app = HotSwapApp.Create(migration, settings: HotSwapApp.Settings(migration, migrationId: id));
        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, id, o => o.Cutover = CutoverMode.Window))
        {
            await coordinator.ReplicateAsync();
            var cutover = coordinator.CutoverAsync();
            await CoordinatorCli.WaitForPhaseAsync(migration, id, MigrationPhase.Cutover);
            var switched = app.NextSwitch();
            app.SetUseTarget(true);
            await switched;
            await cutover;
        }

        await using var raw = await ConnectionMultiplexer.ConnectAsync($"{migration.Source.ConfigurationString},name=nightly-job");
        await raw.GetDatabase().PingAsync();
        var address = await AddressAsync(raw);

        var (exit, output) = await CoordinatorCli.RunAsync(migration, id, "promote");

        Assert.True(exit == 1, output);
        Assert.Contains($"{address}, name 'nightly-job', last command ", output);
        Assert.Contains("role:slave", await migration.InfoAsync(migration.Target, "replication"));
        Assert.Equal("0", (await migration.SourceAdmin.GetServer(migration.Source.Endpoint).ConfigGetAsync("min-replicas-to-write"))[0].Value); // no fence armed

        (exit, output) = await CoordinatorCli.RunAsync(migration, id, "promote", "--allow-unknown-clients");

        Assert.True(exit == 0, output);
        Assert.Contains("role:master", await migration.InfoAsync(migration.Target, "replication"));
    }

    [Fact]
    public async Task FindAsync_WhenClientIsRenamedAway_SaysItCannotBeChecked()
    {
        await using var server = await RedisServerProcess.StartAsync(settings: ["rename-command CLIENT \"\""]);
        await using var node = await RedisNode.ConnectAsync("SOURCE", server.ConfigurationString, CancellationToken.None);

        var problems = await UnknownClients.FindAsync(node, () => Task.FromResult<IReadOnlyList<InstanceReport>>([]), TimeSpan.FromMilliseconds(50));

        var line = Assert.Single(problems);
        Assert.StartsWith("SOURCE refuses CLIENT LIST", line);
        Assert.Contains("cannot be checked", line);
    }

    private static async Task<string> AddressAsync(ConnectionMultiplexer connection)
    {
        var info = (string)(await connection.GetDatabase().ExecuteAsync("CLIENT", "INFO"))!;
        return info.Split(' ').Single(f => f.StartsWith("addr=", StringComparison.Ordinal))["addr=".Length..];
    }
}

public sealed class UnknownClientsUnitTests
{
    [Fact]
    public void Unknown_KeepsOnlyClientsNoOneAccountsFor()
    {
        var registered = ClientNames.Instance("shop", "host:1:abcd");
        var unregistered = ClientNames.Instance("shop", "host:2:ef01");
        var list = string.Join('\n',
            "id=1 addr=10.0.0.1:1 laddr=x fd=8 name= age=30 idle=0 flags=N db=0 sub=0 psub=0 multi=-1 cmd=set user=default resp=2",
            "id=2 addr=10.0.0.2:2 laddr=x fd=9 name= age=40 idle=0 flags=S db=0 sub=0 psub=0 multi=-1 cmd=replconf user=default resp=2",
            $"id=3 addr=10.0.0.3:3 laddr=x fd=10 name={ClientNames.Coordinator} age=1 idle=0 flags=N db=0 cmd=client|list resp=2",
            $"id=4 addr=10.0.0.4:4 laddr=x fd=11 name={registered} age=5 idle=0 flags=N db=0 cmd=incr resp=2",
            $"id=5 addr=10.0.0.5:5 laddr=x fd=12 name={registered} age=5 idle=0 flags=P db=0 sub=1 cmd=subscribe resp=2",
            $"id=6 addr=10.0.0.6:6 laddr=x fd=13 name={unregistered} age=7 idle=0 flags=N db=0 cmd=get resp=2",
            "id=7 addr=10.0.0.7:7 laddr=x fd=14 name=listener age=9 idle=0 flags=P db=0 sub=1 cmd=subscribe resp=2",
            "id=8 addr=10.0.0.8:8 laddr=x fd=15 name=listener3 age=9 idle=0 flags=P db=0 sub=1 cmd=subscribe resp=3",
            "id=9 addr=10.0.0.9:9 laddr=x fd=16 name= age=2 idle=0 flags=O db=0 cmd=monitor resp=2");

        var unknown = UnknownClients.Unknown(list, new HashSet<string> { "host:1:abcd" }).Select(c => c.Address).ToArray();

        Assert.Equal(["10.0.0.1:1", "10.0.0.6:6", "10.0.0.8:8"], unknown);
    }

    [Fact]
    public void Describe_NamesAddressNameLastCommandAndAge_AndHintsAtAnUnregisteredInstance()
    {
        var entry = ClientEntry.Parse($"id=6 addr=10.0.0.6:6 name={ClientNames.Instance("shop", "h:2:ef")} age=7 flags=N cmd=get resp=2");

        Assert.Equal($"10.0.0.6:6, name '{ClientNames.Instance("shop", "h:2:ef")}', last command get, connected 7 s (a RedisHotSwap instance that does not report: is RedisHotSwap:MigrationId set on it?)", entry.Describe());
        Assert.Equal("h:2:ef", ClientNames.InstanceIdOf(entry.Name));
    }
}
