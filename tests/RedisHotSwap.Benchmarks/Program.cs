using BenchmarkDotNet.Running;
using RedisHotSwap.Benchmarks;

// dotnet run -c Release --project tests/RedisHotSwap.Benchmarks -- --interleaved [rounds]   (the README's figures)
// dotnet run -c Release --project tests/RedisHotSwap.Benchmarks -- --filter '*'              (BenchmarkDotNet)
// dotnet run -c Release --project tests/RedisHotSwap.Benchmarks -- --handoff [cutovers] [writes/s|full] [--trace]  (the handoff's pause)
// dotnet run -c Release --project tests/RedisHotSwap.Benchmarks -- --copy [keys] [cutovers] [loops]   (copy mode: backfill rate, pause)
if (args is ["--copy", ..])
{
    return await CopyRun.RunAsync(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 200_000,
        args.Length > 2 ? int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture) : 5,
        args.Length > 3 ? int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture) : 32);
}

if (args is ["--handoff", ..])
{
    // By default the load is paced at 30,000 writes/s (a service with headroom); "full" runs it as fast as the machine goes.
    return await HandoffPauseRun.RunAsync(
        args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 10,
        args.Length > 2 && args[2] != "--trace" ? (args[2] == "full" ? null : double.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture)) : 30_000,
        args.Contains("--trace"));
}

if (args is ["--interleaved", ..])
{
    return await InterleavedRun.RunAsync(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 40);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
