namespace RedisHotSwap.Compatibility.Tests.Infrastructure;

/// <summary>Moves several application instances, one after the other as an operator would, and returns once all have moved.</summary>
internal static class Both
{
    public static async Task SwitchAsync(RedisSide side, params WebInstance[] instances)
    {
        foreach (var instance in instances)
        {
            await instance.Controller.SwitchToAsync(side);
            Assert.Equal(side, instance.Controller.ActiveSide);
        }
    }
}
