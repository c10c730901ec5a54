using RedisHotSwap.Copy;

namespace RedisHotSwap.Tests.Copy;

/// <summary>The fence inside the SDK, as pure logic: what it holds, what it waits for, what lets go.</summary>
public sealed class WriteTrackerUnitTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Hold_WithACommandInFlight_ReturnsOnlyOnceItExits()
    {
        var tracker = new WriteTracker();
        await tracker.EnterAsync();
        var holding = tracker.HoldAsync(CancellationToken.None);
        Assert.False(holding.IsCompleted);

        tracker.Exit();
        await holding.WaitAsync(Bound);
        Assert.True(tracker.IsHolding);
    }

    [Fact]
    public async Task Enter_WhileHeld_WaitsUntilReleased()
    {
        var tracker = new WriteTracker();
        await tracker.HoldAsync(CancellationToken.None).WaitAsync(Bound); // nothing in flight: held at once
        var entering = tracker.EnterAsync().AsTask();
        Assert.False(entering.IsCompleted);

        tracker.Release();
        await entering.WaitAsync(Bound);
        Assert.False(tracker.IsHolding);
        tracker.Exit();
    }

    [Fact]
    public async Task Hold_CommandsEnteringWhileItDrains_AreHeldNotCounted()
    {
        var tracker = new WriteTracker();
        await tracker.EnterAsync();
        var holding = tracker.HoldAsync(CancellationToken.None);
        var late = tracker.EnterAsync().AsTask(); // arrives after the fence closed: held, so the drain does not wait for it

        tracker.Exit();
        await holding.WaitAsync(Bound);
        Assert.False(late.IsCompleted);
        tracker.Release();
        await late.WaitAsync(Bound);
        tracker.Exit();
    }
}
