using BenchmarkDotNet.Running;
using RedisHotSwap.Benchmarks;

// dotnet run -c Release --project tests/RedisHotSwap.Benchmarks -- --interleaved [rounds]   (the README's figures)
// dotnet run -c Release --project tests/RedisHotSwap.Benchmarks -- --filter '*'              (BenchmarkDotNet)
// dotnet run -c Release --project tests/RedisHotSwap.Benchmarks -- --handoff [cutovers]      (the handoff's pause)
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
    return await HandoffPauseRun.RunAsync(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 10);
}

if (args is ["--interleaved", ..])
{
    return await InterleavedRun.RunAsync(args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 40);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
