using System.Runtime;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Tests;

public sealed class CodePathUnitTests
{
    // The first handoff of a process compiled, behind the pause, the runtime's generic code that runs each async method
    // once it first waits (its state machine's box, its builder's AwaitUnsafeOnCompleted): CodePath must compile it ahead.
    [Fact]
    public void Prepare_AnAsyncMethod_ItsFirstWaitCompilesNothing()
    {
        var unprepared = FirstWaitCompiles(Unprepared.WaitAsync);
        CodePath.Prepare(typeof(Prepared));
        var prepared = FirstWaitCompiles(Prepared.WaitAsync);

        Assert.True(unprepared > 0, "the same method left unprepared compiled nothing either: this check would prove nothing");
        Assert.Equal(0, prepared);
    }

    // What the calling thread compiles while an async method runs up to its first wait for a task not yet complete.
    private static long FirstWaitCompiles(Func<Task, Task<int>> method)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var before = JitInfo.GetCompiledMethodCount(currentThread: true);
        var running = method(gate.Task);
        var compiled = JitInfo.GetCompiledMethodCount(currentThread: true) - before;
        gate.SetResult();
        Assert.Equal(1, running.GetAwaiter().GetResult());
        return compiled;
    }

    private static class Prepared
    {
        public static async Task<int> WaitAsync(Task gate)
        {
            await gate.ConfigureAwait(false);
            return 1;
        }
    }

    private static class Unprepared
    {
        public static async Task<int> WaitAsync(Task gate)
        {
            await gate.ConfigureAwait(false);
            return 1;
        }
    }
}
