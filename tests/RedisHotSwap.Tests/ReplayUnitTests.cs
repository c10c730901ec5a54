using RedisHotSwap.Forwarding;
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
        { new RedisTimeoutException(CommandFlags.None, "timeout in the backlog", CommandStatus.WaitingInBacklog), true },
        { new RedisServerException(RedisErrorKind.ExecAbort, CommandFlags.None, "EXECABORT Transaction discarded because of: READONLY You can't write against a read only replica."), true },
        { new RedisServerException(RedisErrorKind.ExecAbort, CommandFlags.None, "EXECABORT Transaction discarded because of previous errors."), true },
        { new RedisServerException(RedisErrorKind.Unknown, CommandFlags.None, "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"), true },
        { new RedisServerException(RedisErrorKind.ReadOnly, CommandFlags.None, "READONLY You can't write against a read only replica. script: 1c3e, on @user_script:1."), true },
        { new RedisServerException(RedisErrorKind.NoReplicas, CommandFlags.None, "NOREPLICAS Not enough good replicas to write."), true },
    };

    public static TheoryData<Exception, bool> Demotions => new()
    {
        { new RedisServerException(RedisErrorKind.ReadOnly, CommandFlags.None, "READONLY You can't write against a read only replica."), true },
        { new RedisServerException(RedisErrorKind.NoReplicas, CommandFlags.None, "NOREPLICAS Not enough good replicas to write."), false },
        { new ObjectDisposedException("mux"), false },
        { new RedisServerException(RedisErrorKind.ExecAbort, CommandFlags.None, "EXECABORT Transaction discarded because of: READONLY You can't write against a read only replica."), true },
    };

    [Theory]
    [MemberData(nameof(Demotions))]
    public void IsDemoted_OnlyForAnswersOfAServerThatBecameAReplica(Exception failure, bool expected) =>
        Assert.Equal(expected, Replay.IsDemoted(failure));

    [Theory]
    [MemberData(nameof(Failures))]
    public void IsUnsent_ReplaysOnlyWhatProvablyNeverRan(Exception failure, bool expected) =>
        Assert.Equal(expected, Replay.IsUnsent(failure));

    [Fact]
    public async Task Async_UnsentFailure_RunsAgainWhenTheOwnerAgrees()
    {
        var asked = 0;

        var result = await Replay.Async(Task.FromException<int>(new ObjectDisposedException("mux")), () => Task.FromResult(42), _ => { asked++; return ValueTask.FromResult(true); });

        Assert.Equal(42, result);
        Assert.Equal(1, asked);
    }

    [Fact]
    public async Task Async_FailureThatMayHaveRun_Surfaces()
    {
        var again = 0;
        var asked = 0;

        await Assert.ThrowsAsync<RedisTimeoutException>(() => Replay.Async(
            Task.FromException(new RedisTimeoutException(CommandFlags.None, "timeout", CommandStatus.Sent)),
            () => { again++; return Task.CompletedTask; },
            _ => { asked++; return ValueTask.FromResult(true); }));

        Assert.Equal(0, again);
        Assert.Equal(0, asked); // never even asked: it may have run
    }

    [Fact]
    public async Task Async_UnsentFailureTheOwnerRefuses_SurfacesUnchanged()
    {
        var failure = new RedisServerException(RedisErrorKind.ReadOnly, CommandFlags.None, "READONLY You can't write against a read only replica.");

        var thrown = await Assert.ThrowsAsync<RedisServerException>(() => Replay.Async(Task.FromException(failure), () => Task.CompletedTask, _ => ValueTask.FromResult(false)));

        Assert.Same(failure, thrown);
    }
}
