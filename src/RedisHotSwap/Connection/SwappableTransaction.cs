using RedisHotSwap.Forwarding;
using StackExchange.Redis;

namespace RedisHotSwap.Connection;

/// <summary>
/// An <see cref="ITransaction"/> built on whichever connection is active when it executes, and built and sent once
/// more on the new one when its failure proves nothing of it ran (<c>EXECABORT</c>, a demoted or retired side):
/// the transaction a handoff's fence holds fails on the demoted side and runs on the new primary instead. Its
/// commands are recorded (the members are generated) and their tasks complete from the attempt that counted.
/// </summary>
/// <remarks>
/// A transaction with conditions (<see cref="AddCondition"/>) is bound to the connection active when the first
/// condition is added: a <see cref="ConditionResult"/> belongs to one attempt, so such a transaction is never sent
/// twice, and a failure surfaces as it would without RedisHotSwap.
/// </remarks>
[GenerateRecording(typeof(ITransaction))]
internal sealed partial class SwappableTransaction(HotSwapConnectionMultiplexer owner, int database, object? asyncState)
    : RecordedUnit(owner, database, asyncState), ITransaction
{
    private readonly List<Func<ITransaction, Task>> commands = [];
    private readonly List<Action<Task>> completions = [];
    private ITransaction? bound;
    private HotSwapRoute? boundRoute;
    private ITransaction? last;

    public bool WasWatchConflict => (bound ?? last)?.WasWatchConflict ?? false;

    private protected override int Recorded => commands.Count;

    public ConditionResult AddCondition(Condition condition)
    {
        if (bound is null)
        {
            boundRoute = Owner.ActiveRoute;
            bound = Open(boundRoute);
            Apply(bound, complete: true);
        }

        return bound.AddCondition(condition);
    }

    public bool Execute(CommandFlags flags = CommandFlags.None) => ExecuteAsync(flags).GetAwaiter().GetResult();

    // As the client's batch does: sends, and lets each command's task tell how it went.
    void IBatch.Execute() => _ = ExecuteAsync().ContinueWith(static done => _ = done.Exception, TaskScheduler.Default);

    public Task<bool> ExecuteAsync(CommandFlags flags = CommandFlags.None) => ExecuteCoreAsync(flags, TakeTouched());

    // Each attempt reads the active route once, passes its tracker (a copy migration's fence, the writable window's
    // marks) and marks the transaction's keys on it, unless its failure proves nothing of it ran there.
    private async Task<bool> ExecuteCoreAsync(CommandFlags flags, TouchedKeys keys)
    {
        if (bound is not null)
        {
            var on = await EnterAsync(boundRoute).ConfigureAwait(false);
            var ran = true;
            try
            {
                return await bound.ExecuteAsync(flags).ConfigureAwait(false);
            }
            catch (Exception ex) when (Replay.IsUnsent(ex))
            {
                ran = false;
                throw;
            }
            finally
            {
                on.Leave(keys, Database, _ => ran);
            }
        }

        Task[]? sent = null;
        try
        {
            for (var attempt = 0; ; attempt++)
            {
                var entered = await EnterAsync().ConfigureAwait(false);
                var route = entered.Route;
                Exception? unsent = null;
                try
                {
                    var transaction = last = Open(route);
                    sent = Apply(transaction, complete: false);
                    return await transaction.ExecuteAsync(flags).ConfigureAwait(false);
                }
                catch (Exception ex) when (Replay.IsUnsent(ex))
                {
                    unsent = ex; // nothing of it ran there: not marked
                    if (!(attempt == 0 && route.MayRecover))
                    {
                        throw;
                    }
                }
                finally
                {
                    entered.Leave(keys, Database, _ => unsent is null);
                }

                await Task.WhenAll(sent!.Select(t => t.ContinueWith(static _ => { }, TaskScheduler.Default))).ConfigureAwait(false); // observed
                if (!await Owner.CanResendAsync(unsent!, route).ConfigureAwait(false))
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(unsent!);
                }
            }
        }
        catch (Exception ex) when (sent is null)
        {
            // Nothing was queued (a command's arguments were refused, the connection closed): every command fails alike.
            sent = [.. commands.Select(_ => Task.FromException(ex))];
            throw;
        }
        finally
        {
            Complete(sent!); // the commands' tasks complete from the attempt that counted, whatever it was
        }
    }

    private ITransaction Open(HotSwapRoute route) => route.Multiplexer.GetDatabase(Database).CreateTransaction(AsyncState);

    // Queues every recorded command on a transaction; their tasks complete the caller's once the attempt counts.
    private Task[] Apply(ITransaction transaction, bool complete)
    {
        var sent = commands.Select(command => command(transaction)).ToArray();
        if (complete)
        {
            Complete(sent);
            commands.Clear();
            completions.Clear();
        }

        return sent;
    }

    private void Complete(Task[] sent)
    {
        for (var i = 0; i < sent.Length; i++)
        {
            completions[i](sent[i]);
        }
    }

    private Task<T> Record<T>(Func<ITransaction, Task<T>> command)
    {
        if (bound is not null)
        {
            return command(bound);
        }

        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        commands.Add(command);
        completions.Add(sent => sent.ContinueWith(
            static (done, state) =>
            {
                var target = (TaskCompletionSource<T>)state!;
                if (done.IsCanceled)
                {
                    target.TrySetCanceled();
                }
                else if (done.Exception is { } failure)
                {
                    target.TrySetException(failure.InnerExceptions);
                }
                else
                {
                    target.TrySetResult(((Task<T>)done).Result);
                }
            },
            result,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default));
        return result.Task;
    }

    private Task<bool> Record(Func<ITransaction, Task> command) =>
        Record<bool>(async transaction =>
        {
            await command(transaction).ConfigureAwait(false);
            return true;
        });
}
