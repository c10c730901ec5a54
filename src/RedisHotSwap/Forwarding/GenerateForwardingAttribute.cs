namespace RedisHotSwap.Forwarding;

/// <summary>
/// Asks RedisHotSwap.Generators to implement every member of <paramref name="contract"/> that the class does not
/// implement by hand, forwarding it to the connection that is active at the moment of the call.
/// </summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
internal sealed class GenerateForwardingAttribute(Type contract) : Attribute
{
    public Type Contract { get; } = contract;
}
