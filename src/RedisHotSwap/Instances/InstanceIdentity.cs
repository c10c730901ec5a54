using System.Reflection;
using RedisHotSwap.Protocol;

namespace RedisHotSwap.Instances;

/// <summary>
/// Who this application instance is: the id its reports carry and the name its connections carry, so that the
/// coordinator can tell its connections from any other client of a server.
/// </summary>
internal sealed record InstanceIdentity(string InstanceId, string Application)
{
    /// <summary>A new identity: the machine, the process and a random part (several instances may share a process).</summary>
    public static InstanceIdentity Create() => new(
        $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}"[..^24],
        Assembly.GetEntryAssembly()?.GetName().Name ?? "unknown");

    /// <summary>The name of every connection of this instance (<c>CLIENT SETNAME</c>), unless the application names them itself.</summary>
    public string ClientName => ClientNames.Instance(Application, InstanceId);
}
