namespace RedisHotSwap.Forwarding;

/// <summary>
/// Asks RedisHotSwap.Generators to implement every command (task-returning member) of <paramref name="contract"/>
/// that the class does not implement by hand as a call to <c>Record(unit => unit.Command(...))</c>, so that the unit
/// can be built again on another connection. Other members are written by hand.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
internal sealed class GenerateRecordingAttribute(Type contract) : Attribute
{
    public Type Contract { get; } = contract;
}
