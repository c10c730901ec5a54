using System.Diagnostics.Metrics;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using RedisHotSwap.Forwarding;
using RedisHotSwap.Telemetry;
using StackExchange.Redis;

namespace RedisHotSwap.Tests;

public sealed class ReplayUnitTests
{
    public static TheoryData<Exception, bool> Failures => new()
    {
        { new ObjectDisposedException("mux"), true },
        { new RedisConnectionException(ConnectionFailureType.SocketClosed, CommandFlags.None, "closed", null, CommandStatus.WaitingToBeSent), true },
        { new RedisConnectionException(ConnectionFailureType.SocketClosed, CommandFlags.None, "closed", null, CommandStatus.WaitingInBacklog), true },
        { new RedisConnectionException(ConnectionFailureType.SocketClosed, CommandFlags.None, "closed", null, CommandStatus.Sent), false },
        { new RedisServerException(RedisErrorKind.ReadOnly, CommandFlags.None, "READONLY You can't write against a read only replica."), true },
        { new RedisServerException(RedisErrorKind.WrongType, CommandFlags.None, "WRONGTYPE Operation against a key holding the wrong kind of value"), false },
        { new RedisTimeoutException(CommandFlags.None, "timeout", CommandStatus.Sent), false },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void IsUnsent_ReplaysOnlyWhatProvablyNeverRan(Exception failure, bool expected) =>
        Assert.Equal(expected, Replay.IsUnsent(failure));

    [Fact]
    public async Task Async_UnsentFailure_RunsAgainAndCountsIt()
    {
        using var telemetry = new HotSwapTelemetry(null, () => RedisSide.Source);
        using var retried = new MetricCollector<long>(null, HotSwapTelemetry.MeterName, "redis.hotswap.commands.retried");

        var result = await Replay.Async(Task.FromException<int>(new ObjectDisposedException("mux")), () => Task.FromResult(42), telemetry);

        Assert.Equal(42, result);
        Assert.Equal(1, retried.GetMeasurementSnapshot().EvaluateAsCounter());
    }

    [Fact]
    public async Task Async_FailureThatMayHaveRun_Surfaces()
    {
        using var telemetry = new HotSwapTelemetry(null, () => RedisSide.Source);
        var again = 0;

        await Assert.ThrowsAsync<RedisTimeoutException>(() => Replay.Async(
            Task.FromException(new RedisTimeoutException(CommandFlags.None, "timeout", CommandStatus.Sent)),
            () => { again++; return Task.CompletedTask; },
            telemetry));

        Assert.Equal(0, again);
    }
}
