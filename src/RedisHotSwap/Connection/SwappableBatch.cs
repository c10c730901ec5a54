using RedisHotSwap.Forwarding;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// An <see cref="IBatch"/> sent on whichever connection is active when it executes. Its commands are recorded (the
/// members are generated); each one whose failure proves it did not run (a handoff's demoted side, a retired
/// connection) is sent once more, alone, on the active connection, as a command outside a batch would be.
/// </summary>
[GenerateRecording(typeof(IBatch))]
internal sealed partial class SwappableBatch(HotSwapConnectionMultiplexer owner, int database, object? asyncState)
    : RecordedUnit(owner, database, asyncState), IBatch
{
    private readonly List<Func<IBatch, Task>> commands = [];
    private readonly List<Action<Task, HotSwapRoute>> completions = [];

    public void Execute()
    {
        // A copy migration's fence holds the batch (this call blocks then, as the client's own does on a full backlog).
        var keys = TakeTouched();
        var tracker = Owner.ActiveRoute.Tracker;
        tracker?.Enter();
        var route = Owner.ActiveRoute;
        var batch = Open(route);
        var sent = commands.Select(command => command(batch)).ToArray();
        batch.Execute();
        for (var i = 0; i < sent.Length; i++)
        {
            completions[i](sent[i], route);
        }

        commands.Clear();
        completions.Clear();
        if (tracker is not null)
        {
            // Marked once every command of it was answered, however it went.
            _ = Task.WhenAll(sent).ContinueWith(
                _ =>
                {
                    keys.MarkOn(tracker, route, Database);
                    tracker.Exit();
                },
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }
    }

    private IBatch Open(HotSwapRoute route) => route.Multiplexer.GetDatabase(Database).CreateBatch(AsyncState);

    private Task<T> Record<T>(Func<IBatch, Task<T>> command)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        commands.Add(command);
        completions.Add((sent, route) => _ = CompleteAsync((Task<T>)sent, route, command, result));
        return result.Task;
    }

    // The caller's task completes from the batch's answer, or from the command sent once more on its own.
    private async Task CompleteAsync<T>(Task<T> sent, HotSwapRoute route, Func<IBatch, Task<T>> command, TaskCompletionSource<T> result)
    {
        try
        {
            try
            {
                result.TrySetResult(await sent.ConfigureAwait(false));
                return;
            }
            catch (Exception ex) when (Replay.IsUnsent(ex))
            {
                if (!await Owner.CanResendAsync(ex, route).ConfigureAwait(false))
                {
                    throw;
                }
            }

            var alone = Open(Owner.ActiveRoute);
            var again = command(alone);
            alone.Execute();
            result.TrySetResult(await again.ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            result.TrySetException(ex);
        }
    }

    private Task<bool> Record(Func<IBatch, Task> command) =>
        Record<bool>(async batch =>
        {
            await command(batch).ConfigureAwait(false);
            return true;
        });
}
