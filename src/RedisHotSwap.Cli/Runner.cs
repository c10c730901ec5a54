using System.CommandLine;
using System.Diagnostics;
using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>One verb being run: the coordinator, the options it was given, where output goes.</summary>
internal sealed class VerbRun(MigrationCoordinator coordinator, CoordinatorOptions options, ParseResult parse, IOutput output, CancellationToken cancellation)
{
    public MigrationCoordinator Coordinator { get; } = coordinator;

    public CoordinatorOptions Options { get; } = options;

    public ParseResult Parse { get; } = parse;

    public IOutput Output { get; } = output;

    public CancellationToken Cancellation { get; } = cancellation;

    /// <summary>The status the verb ended with, shown in full; otherwise a fresh one is read and summarised.</summary>
    public MigrationStatus? Shown { get; private set; }

    public void Show(MigrationStatus status) => Shown = status;
}

/// <summary>
/// Runs one verb: connects, reports progress, turns the outcome into output and an exit code. Whatever happens,
/// a person reads one line with the remedy, never a stack trace.
/// </summary>
internal static class Runner
{
    public const int Done = 0;
    public const int Failed = 1;
    public const int Refused = 2;

    public static async Task<int> RunAsync(string verb, CoordinatorOptions options, ParseResult parse, bool json, Func<VerbRun, Task> run, CancellationToken cancellationToken)
    {
        IOutput output = json ? new JsonOutput() : new ConsoleOutput(options);
        if (Missing(options) is { Count: > 0 } missing)
        {
            output.Refused(missing);
            return Refused;
        }

        // Printed off the coordinator's path: an audit line is written while a server's writes may be held.
        var audit = System.Threading.Channels.Channel.CreateUnbounded<string>(new() { SingleReader = true });
        options.Audit = line => audit.Writer.TryWrite(line); // the coordinator puts its time (ISO-8601, UTC) first
        var printing = Task.Run(async () =>
        {
            await foreach (var line in audit.Reader.ReadAllAsync(CancellationToken.None))
            {
                output.Audit(line);
            }
        }, CancellationToken.None);
        try
        {
            return await RunCoreAsync(verb, options, parse, output, run, cancellationToken);
        }
        finally
        {
            audit.Writer.TryComplete();
            await printing;
        }
    }

    private static async Task<int> RunCoreAsync(string verb, CoordinatorOptions options, ParseResult parse, IOutput output, Func<VerbRun, Task> run, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await using var coordinator = await MigrationCoordinator.ConnectAsync(options, output.Progress, cancellationToken: cancellationToken);
            var verbRun = new VerbRun(coordinator, options, parse, output, cancellationToken);
            await run(verbRun);
            if (!output.Ended)
            {
                output.Finished(verb, verbRun.Shown ?? await coordinator.StatusAsync(), clock.Elapsed, showStatus: verbRun.Shown is not null);
            }

            return Done;
        }
        catch (PreflightRefusedException ex)
        {
            output.Refused(ex.Problems);
            return Refused;
        }
        catch (MigrationHaltedException ex)
        {
            output.Halted(ex);
            return Failed;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            output.Halted(new MigrationHaltedException("Interrupted.", "Everything stays as the last completed step left it.", "Run the same command again to continue."));
            return Failed;
        }
        catch (TimeoutException ex)
        {
            // RedisTimeoutException is a TimeoutException, not a RedisException.
            output.Halted(new MigrationHaltedException(
                $"A server did not answer in time ({Redacted.Text(TimeoutSummary(ex.Message), options)}).",
                "The last completed step stands (see 'status').",
                "Check both servers' load and the network between them and this machine, then run the same command again."));
            return Failed;
        }
        catch (StackExchange.Redis.RedisException ex)
        {
            output.Halted(new MigrationHaltedException(
                $"Redis error: {Redacted.Text(FirstLine(ex.Message), options)}.",
                "The last completed step stands (see 'status').",
                "Fix the cause, then run the same command again."));
            return Failed;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            output.Halted(new MigrationHaltedException(
                $"Unexpected {ex.GetType().Name}: {Redacted.Text(FirstLine(ex.Message), options)}.",
                "The last completed step stands (see 'status').",
                "Run the same command again; if it fails the same way, report this message."));
            return Failed;
        }
    }

    private static List<string> Missing(CoordinatorOptions options)
    {
        var missing = new List<string>();
        if (options.Source.Length == 0)
        {
            missing.Add("No SOURCE: give --source (a StackExchange.Redis configuration string) or set REDIS_HOTSWAP_SOURCE.");
        }

        if (options.Target.Length == 0)
        {
            missing.Add("No TARGET: give --target (a StackExchange.Redis configuration string) or set REDIS_HOTSWAP_TARGET.");
        }

        if (options.MigrationId.Length == 0)
        {
            missing.Add("No migration id: give --migration NAME or set REDIS_HOTSWAP_MIGRATION, with the value the applications have in RedisHotSwap:MigrationId.");
        }

        return missing;
    }

    // StackExchange.Redis's timeout message is a page of counters; a person needs which server, which command, how long.
    private static string TimeoutSummary(string message)
    {
        var endpoint = System.Text.RegularExpressions.Regex.Match(message, @"serverEndpoint: ([^,\s]+)");
        var command = System.Text.RegularExpressions.Regex.Match(message, @"command=([^,\s]+)");
        var elapsed = System.Text.RegularExpressions.Regex.Match(message, @"(\d+ms elapsed, timeout is \d+ms)");
        return endpoint.Success && command.Success && elapsed.Success
            ? $"{endpoint.Groups[1].Value}, {command.Groups[1].Value}: {elapsed.Groups[1].Value}"
            : FirstLine(message);
    }

    private static string FirstLine(string message) => message.Split('\n')[0].Trim().TrimEnd('.');
}
