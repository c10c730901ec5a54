// A whole migration, live: application instances in processes of their own write and read at full speed while the
// coordinator (redis-hotswap, in its own process too) replicates SOURCE to TARGET, an operator flips each instance's
// configuration when the coordinator says TARGET is writable, and the coordinator promotes TARGET once every
// instance has moved. Writes report.json and report.png; exits non-zero if an application saw an error or an
// acknowledged write is missing on TARGET.
using System.CommandLine;
using RedisHotSwap.Demo;

var instances = new Option<int>("--instances") { Description = "Application instances, each a process of its own.", DefaultValueFactory = _ => 3 };
instances.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 16) { r.AddError("--instances must be between 1 and 16."); } });
var keys = new Option<int>("--keys") { Description = "Keys seeded on SOURCE (every common type, databases 0 and 1).", DefaultValueFactory = _ => 200_000 };
keys.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 10 or > 20_000_000) { r.AddError("--keys must be between 10 and 20000000."); } });
var cutover = new Option<string?>("--cutover") { Description = "The cutover mode, passed to 'redis-hotswap migrate --cutover' (handoff or window); the coordinator's default when omitted." };
cutover.AcceptOnlyFromAmong("handoff", "window");
var source = new Option<string?>("--source") { Description = "Use this SOURCE (a StackExchange.Redis configuration string) instead of starting one; seeded only when empty." };
var target = new Option<string?>("--target") { Description = "Use this TARGET (must be empty) instead of starting one." };
var output = new Option<string>("--output") { Description = "Where report.json and report.png go.", DefaultValueFactory = _ => Path.Combine("artifacts", "demo") };
var root = new RootCommand("The RedisHotSwap demo: a live migration under load, with a report.\nExample: dotnet run --project samples/RedisHotSwap.Demo -- --instances 3 --keys 200000 --output artifacts/demo")
{
    instances, keys, cutover, source, target, output,
};

var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    foreach (var error in parse.Errors)
    {
        Console.Error.WriteLine($"{error.Message} (see --help)");
    }

    return 2;
}

if (parse.Action is not null)
{
    return await parse.InvokeAsync(); // --help, --version
}

if (parse.GetValue(source) is null != parse.GetValue(target) is null)
{
    Console.Error.WriteLine("Give both --source and --target, or neither (the demo then starts two redis-servers).");
    return 2;
}

return await DemoRun.RunAsync(new DemoSettings(
    parse.GetValue(instances), parse.GetValue(keys), parse.GetValue(cutover), parse.GetValue(source), parse.GetValue(target), Path.GetFullPath(parse.GetValue(output)!)));
