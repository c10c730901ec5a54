using System.Diagnostics;
using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>Runs one verb: connects, reports progress, turns the outcome into output and an exit code.</summary>
internal static class Runner
{
    public const int Done = 0;
    public const int Failed = 1;
    public const int Refused = 2;

    public static async Task<int> RunAsync(
        string verb, CoordinatorOptions options, bool json, Func<MigrationCoordinator, CancellationToken, Task<MigrationStatus?>> run, CancellationToken cancellationToken)
    {
        IOutput output = json ? new JsonOutput() : new ConsoleOutput();
        // Printed off the coordinator's path: an audit line is written while SOURCE's writes may be held.
        var audit = System.Threading.Channels.Channel.CreateUnbounded<string>(new() { SingleReader = true });
        options.Audit = line => audit.Writer.TryWrite($"{DateTimeOffset.UtcNow:O} {line}");
        var printing = Task.Run(async () =>
        {
            await foreach (var line in audit.Reader.ReadAllAsync(CancellationToken.None))
            {
                output.Audit(line);
            }
        }, CancellationToken.None);
        try
        {
            return await RunCoreAsync(verb, options, output, run, cancellationToken);
        }
        finally
        {
            audit.Writer.TryComplete();
            await printing;
        }
    }

    private static async Task<int> RunCoreAsync(
        string verb, CoordinatorOptions options, IOutput output, Func<MigrationCoordinator, CancellationToken, Task<MigrationStatus?>> run, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            await using var coordinator = await MigrationCoordinator.ConnectAsync(options, output.Progress, cancellationToken: cancellationToken);
            var status = await run(coordinator, cancellationToken);
            var final = status ?? await coordinator.StatusAsync();
            output.Finished(verb, final, clock.Elapsed, showStatus: status is not null);
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
        catch (StackExchange.Redis.RedisException ex)
        {
            output.Halted(new MigrationHaltedException(
                $"Redis error: {RedisHotSwap.Coordinator.Redacted.Text(ex.Message, options)}.",
                "The last completed step stands (see 'status').",
                "Fix the cause, then run the same command again."));
            return Failed;
        }
    }
}
