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
    private readonly List<Action<Task, Entered, TouchedKeys, int>> completions = [];

    private protected override int Recorded => commands.Count;

    public void Execute()
    {
        // A copy migration's fence holds the batch (this call blocks then, as the client's own does on a full backlog).
        var keys = TakeTouched();
        var entered = Enter();
        var batch = Open(entered.Route);
        var sent = commands.Select(command => command(batch)).ToArray();
        batch.Execute();
        for (var i = 0; i < sent.Length; i++)
        {
            completions[i](sent[i], entered, keys, i);
        }

        commands.Clear();
        completions.Clear();
        if (entered.Tracker is not null)
        {
            // Marked once every command of it was answered, on the route it ran on; a command refused unrun is marked
            // where it is sent again, if anywhere.
            _ = Task.WhenAll(sent).ContinueWith(
                _ => entered.Leave(keys, Database, i => !(sent[i].Exception?.InnerException is { } failure && Replay.IsUnsent(failure))),
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
        completions.Add((sent, entered, keys, index) => _ = CompleteAsync((Task<T>)sent, entered.Route, command, keys.Of(index), result));
        return result.Task;
    }

    // The caller's task completes from the batch's answer, or from the command sent once more on its own (through the
    // tracker of the route it is sent on, its keys marked there).
    private async Task CompleteAsync<T>(Task<T> sent, HotSwapRoute route, Func<IBatch, Task<T>> command, TouchedKeys keys, TaskCompletionSource<T> result)
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

            var entered = await EnterAsync().ConfigureAwait(false);
            var ran = true;
            try
            {
                var alone = Open(entered.Route);
                var again = command(alone);
                alone.Execute();
                result.TrySetResult(await again.ConfigureAwait(false));
            }
            catch (Exception ex) when (Replay.IsUnsent(ex))
            {
                ran = false;
                throw;
            }
            finally
            {
                entered.Leave(keys, Database, _ => ran);
            }
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
