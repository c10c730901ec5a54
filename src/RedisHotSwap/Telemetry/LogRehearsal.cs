using System.Reflection;
using Microsoft.Extensions.Logging;

namespace RedisHotSwap.Telemetry;

/// <summary>
/// Writes every log event of a class once into a logger that formats and discards it: the logging library's code
/// for each event (generic over its arguments' types) is then compiled before a handoff logs it while commands wait.
/// </summary>
internal static class LogRehearsal
{
    public static void Run(Type events)
    {
        foreach (var method in events.GetMethods(BindingFlags.Public | BindingFlags.Static))
        {
            var parameters = method.GetParameters();
            if (parameters.Length == 0 || parameters[0].ParameterType != typeof(ILogger) || method.ContainsGenericParameters)
            {
                continue;
            }

            var arguments = parameters.Select(p => p.ParameterType == typeof(ILogger) ? Discard.Instance
                : p.ParameterType == typeof(string) ? string.Empty
                : p.ParameterType.IsValueType ? Activator.CreateInstance(p.ParameterType)
                : null).ToArray();
            try
            {
                method.Invoke(null, arguments);
            }
            catch (TargetInvocationException)
            {
                // An event that needs a real argument: compiled when it is first logged.
            }
        }
    }

    private sealed class Discard : ILogger
    {
        public static readonly Discard Instance = new();

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            _ = formatter(state, exception);
    }
}
