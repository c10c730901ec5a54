using System.Collections.Concurrent;
using System.Globalization;
using RedisHotSwap.Coordinator;
using RedisHotSwap.Tests.Infrastructure;

namespace RedisHotSwap.Tests.Coordinator;

/// <summary>Every command that changes a server reaches the audit trail, with its time first and its reason last.</summary>
public sealed class AuditTests
{
    [Theory]
    [InlineData(CutoverMode.Handoff)]
    [InlineData(CutoverMode.Window)]
    public async Task Migrate_AuditsEveryServerChange_WithItsTimeAndReason(CutoverMode cutover)
    {
        await using var migration = await Migration.StartAsync();
        var lines = new ConcurrentQueue<string>();
        await using (var coordinator = await CoordinatorCli.ObserverAsync(migration, "audited", o => (o.Audit, o.Cutover, o.ExpectedInstances) = (lines.Enqueue, cutover, 0)))
        {
            await coordinator.MigrateAsync();
        }

        Assert.Contains(lines, l => l.Contains("TARGET: CONFIG SET masterauth *** (", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains($"TARGET: REPLICAOF 127.0.0.1 {migration.Source.Port} (", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("SOURCE: CLIENT PAUSE ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("SOURCE: CONFIG SET min-replicas-to-write ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("TARGET: REPLICAOF NO ONE (", StringComparison.Ordinal));
        Assert.All(lines, line =>
        {
            var at = DateTimeOffset.ParseExact(line[..24], "yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            Assert.True(Math.Abs((DateTimeOffset.UtcNow - at).TotalMinutes) < 5, line);
            Assert.Matches(@" \(.+\)$", line);
            Assert.DoesNotContain(migration.Source.Password, line);
            Assert.DoesNotContain(migration.Target.Password, line);
        });
    }
}
