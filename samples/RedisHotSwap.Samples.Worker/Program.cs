// A worker service on the swappable connection. Setting RedisHotSwap:UseTarget to true in appsettings.json (the file
// is reloaded on change) moves the running worker to TARGET; the job's code does not change.
using RedisHotSwap;
using RedisHotSwap.Samples.Worker;

var builder = Host.CreateApplicationBuilder(args);
builder.Services.AddRedisHotSwap(builder.Configuration.GetSection("RedisHotSwap"));
builder.Services.AddHostedService<OrderCounter>();
builder.Build().Run();
