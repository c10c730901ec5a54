using System.Reflection;
using System.Runtime.CompilerServices;

namespace RedisHotSwap.Protocol;

/// <summary>
/// Compiles ahead the code a switch runs, so that the first handoff of a process does not pay for the just-in-time
/// compiler while its commands wait (measured here: the first switch of a process took tens of milliseconds more than
/// the next ones). Only what this library wrote by hand, and not generic code, which compiles per use.
/// </summary>
internal static class CodePath
{
    private const BindingFlags Declared = BindingFlags.DeclaredOnly | BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;

    /// <summary>Compiles every method of <paramref name="types"/> and of the types nested in them (lambdas, async state machines).</summary>
    public static void Prepare(params Type[] types)
    {
        foreach (var type in types)
        {
            Prepare(type);
        }
    }

    private static void Prepare(Type type)
    {
        if (type.ContainsGenericParameters)
        {
            return;
        }

        foreach (var method in type.GetMethods(Declared))
        {
            if (!method.IsAbstract && !method.ContainsGenericParameters && (method.MethodImplementationFlags & MethodImplAttributes.InternalCall) == 0)
            {
                try
                {
                    RuntimeHelpers.PrepareMethod(method.MethodHandle);
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or TypeLoadException)
                {
                    // Not compilable on its own (for example an extern or a method of an interface's default body): skipped.
                }
            }
        }

        foreach (var constructor in type.GetConstructors(Declared))
        {
            try
            {
                RuntimeHelpers.PrepareMethod(constructor.MethodHandle);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or TypeLoadException)
            {
                // as above
            }
        }

        foreach (var nested in type.GetNestedTypes(Declared))
        {
            Prepare(nested);
        }
    }
}
