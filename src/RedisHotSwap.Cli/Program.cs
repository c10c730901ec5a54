using RedisHotSwap.Cli;

return await Commands.Build().Parse(args).InvokeAsync();
