using RedisHotSwap.Cli;

// While the coordinator holds SOURCE's writes, no continuation may wait for the thread pool to add a thread (it starts
// with one per core and adds more slowly): the few it needs are there from the start.
ThreadPool.GetMinThreads(out var workers, out var completion);
ThreadPool.SetMinThreads(Math.Max(workers, 16), Math.Max(completion, 16));
return await Commands.InvokeAsync(args);
