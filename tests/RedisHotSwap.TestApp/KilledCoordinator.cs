using System.Diagnostics;
using System.Globalization;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Testing;

/// <summary>
/// The coordinator killed (SIGKILL: no finally block, no undo) right after a given server command ran: `migrate` with
/// the secrets and the id from REDIS_HOTSWAP_SOURCE, _TARGET and _MIGRATION, in the cutover mode given (the servers'
/// choice when none is) and with the promotion timeout given. The command is named by its audit line (host and port
/// written "host port") and which occurrence of it, "line#n" (see <see cref="AuditStep"/>). Exits 0 when the migration
/// finished without sending it.
/// </summary>
internal static class KilledCoordinator
{
    public static async Task<int> RunAsync(string killAfter, string? cutover, string? promotionTimeout)
    {
        var steps = new AuditStep();
        var options = new CoordinatorOptions
        {
            Source = Environment.GetEnvironmentVariable("REDIS_HOTSWAP_SOURCE") ?? string.Empty,
            Target = Environment.GetEnvironmentVariable("REDIS_HOTSWAP_TARGET") ?? string.Empty,
            MigrationId = Environment.GetEnvironmentVariable("REDIS_HOTSWAP_MIGRATION") ?? string.Empty,
            ExpectedInstances = 1,
            PollInterval = TimeSpan.FromMilliseconds(50),
            Cutover = cutover is null ? CutoverMode.Auto : Enum.Parse<CutoverMode>(cutover, ignoreCase: true),
            Audit = line =>
            {
                if (steps.Next(line) == killAfter)
                {
                    Console.WriteLine($"killed after: {line}");
                    Console.Out.Flush();
                    Process.GetCurrentProcess().Kill();
                }
            },
        };
        if (promotionTimeout is not null)
        {
            options.PromotionTimeout = TimeSpan.Parse(promotionTimeout, CultureInfo.InvariantCulture);
        }

        await using var coordinator = await MigrationCoordinator.ConnectAsync(options);
        await coordinator.MigrateAsync();
        return 0;
    }
}
