using RedisHotSwap.Cli;

return await Commands.InvokeAsync(args);
