using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace RedisHotSwap.Protocol;

/// <summary>
/// Compiles ahead the code a switch runs, so that the first handoff of a process does not pay for the just-in-time
/// compiler while its commands wait (measured here: the first switch of a process took tens of milliseconds more than
/// the next ones). What this library wrote by hand, and for each of its async methods the runtime's generic code
/// that runs it: an async method compiled to a struct state machine runs through methods of the runtime instantiated
/// over that struct (the box that holds it once it first waits, the builder's <c>Start</c> and
/// <c>AwaitUnsafeOnCompleted</c>), which no call to the method itself compiles until it first waits for real. Those
/// were most of what the first handoff compiled behind the pause (seen with the runtime's JIT events).
/// </summary>
internal static class CodePath
{
    private const BindingFlags Declared = BindingFlags.DeclaredOnly | BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;

    // The runtime's own types behind the builders (not public): looked up once; when a runtime names them otherwise,
    // the async machinery is simply left to compile as it runs.
    private static readonly Assembly Runtime = typeof(AsyncTaskMethodBuilder).Assembly;
    private static readonly Type? VoidResult = Runtime.GetType("System.Threading.Tasks.VoidTaskResult");
    private static readonly Type? StateMachineBox = typeof(AsyncTaskMethodBuilder<>).GetNestedType("AsyncStateMachineBox`1", BindingFlags.NonPublic);
    private static readonly MethodInfo? CoreStart = Runtime.GetType("System.Runtime.CompilerServices.AsyncMethodBuilderCore")?.GetMethod("Start", BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic);

    // Once per process: later cutovers find it compiled.
    private static readonly ConcurrentDictionary<Type, bool> Prepared = new();

    /// <summary>Compiles every method of <paramref name="types"/> and of the types nested in them (lambdas, async state machines).</summary>
    public static void Prepare(params Type[] types)
    {
        foreach (var type in types)
        {
            Prepare(type);
        }
    }

    /// <summary>
    /// Compiles the copies of <paramref name="container"/>'s generic methods with one type parameter (and of their
    /// lambdas and async state machines) for each of <paramref name="results"/>: a copy over a struct (a command's
    /// <c>bool</c>, <c>long</c> or <c>RedisValue</c>) is compiled apart from every other, the first time it runs.
    /// </summary>
    public static void PrepareFor(Type container, IEnumerable<Type> results)
    {
        var outer = container.IsGenericType ? container.GetGenericArguments() : Type.EmptyTypes;
        var methods = container.GetMethods(Declared).Where(m => m.IsGenericMethodDefinition && m.GetGenericArguments().Length == 1).ToArray();
        var nested = container.GetNestedTypes(Declared).Where(n => n.IsGenericTypeDefinition && n.GetGenericArguments().Length == outer.Length + 1).ToArray();
        foreach (var result in results)
        {
            foreach (var method in methods)
            {
                CompileGeneric(method, [result]);
            }

            foreach (var type in nested)
            {
                try
                {
                    Prepare(type.MakeGenericType([.. outer, result]));
                }
                catch (ArgumentException)
                {
                    // A constraint this result does not meet: no such copy runs.
                }
            }
        }
    }

    /// <summary>Compiles <paramref name="definition"/> (a generic type of one parameter) over each of <paramref name="arguments"/>; nothing when it is null.</summary>
    public static void PrepareInstances(Type? definition, IEnumerable<Type> arguments)
    {
        if (definition is null)
        {
            return;
        }

        foreach (var argument in arguments)
        {
            try
            {
                Prepare(definition.MakeGenericType(argument));
            }
            catch (ArgumentException)
            {
                // A constraint this argument does not meet.
            }
        }
    }

    /// <summary>Compiles the methods of <paramref name="container"/> and of its nested types whose names <paramref name="include"/> accepts.</summary>
    public static void PrepareNested(Type container, Func<string, bool> include)
    {
        foreach (var nested in container.GetNestedTypes(Declared).Where(n => include(n.Name)))
        {
            Prepare(nested);
        }
    }

    /// <summary>Compiles the named methods of <paramref name="type"/> (another library's, say), generic ones over <paramref name="arguments"/>.</summary>
    public static void PrepareMethods(Type? type, string[] names, params Type[] arguments)
    {
        foreach (var method in type?.GetMethods(Declared).Where(m => names.Contains(m.Name)) ?? [])
        {
            if (!method.IsGenericMethodDefinition)
            {
                Compile(method);
            }
            else if (method.GetGenericArguments().Length == arguments.Length)
            {
                CompileGeneric(method, arguments);
            }
        }
    }

    private static void Prepare(Type type)
    {
        if (type.ContainsGenericParameters || !Prepared.TryAdd(type, true))
        {
            return;
        }

        foreach (var method in type.GetMethods(Declared))
        {
            if (!method.IsAbstract && !method.ContainsGenericParameters && (method.MethodImplementationFlags & MethodImplAttributes.InternalCall) == 0)
            {
                Compile(method);
            }
        }

        foreach (var constructor in type.GetConstructors(Declared))
        {
            Compile(constructor);
        }

        if (typeof(IAsyncStateMachine).IsAssignableFrom(type))
        {
            PrepareAsyncMachinery(type);
        }

        foreach (var nested in type.GetNestedTypes(Declared))
        {
            Prepare(nested);
        }
    }

    // The runtime's methods instantiated over one state machine: its builder's generic methods (Start, and
    // AwaitUnsafeOnCompleted for each kind of awaiter it holds), the Task<TResult> builder every builder delegates to,
    // the box, and the awaiters themselves (a ConfiguredTaskAwaiter over a struct result compiles per result type).
    private static void PrepareAsyncMachinery(Type stateMachine)
    {
        var fields = stateMachine.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
        var builder = fields.FirstOrDefault(f => f.Name == "<>t__builder")?.FieldType;
        if (builder is null)
        {
            return;
        }

        var awaiters = fields.Where(f => f.Name.StartsWith("<>u__", StringComparison.Ordinal)).Select(f => f.FieldType).Distinct().ToArray();
        var result = builder.IsGenericType ? builder.GetGenericArguments()[0] : VoidResult;
        var builders = new List<Type> { builder };
        if (result is not null && (builder == typeof(AsyncTaskMethodBuilder) || (builder.IsGenericType && builder.GetGenericTypeDefinition() == typeof(AsyncValueTaskMethodBuilder<>))))
        {
            builders.Add(typeof(AsyncTaskMethodBuilder<>).MakeGenericType(result));
        }

        foreach (var each in builders)
        {
            foreach (var method in each.GetMethods(Declared))
            {
                if (!method.IsGenericMethodDefinition)
                {
                    Compile(method);
                    continue;
                }

                var arity = method.GetGenericArguments().Length;
                if (arity == 1)
                {
                    // Start<TStateMachine> and GetStateMachineBox<TStateMachine>, or AwaitUnsafeOnCompleted<TAwaiter>
                    // once the box exists: each meets the constraints of one of them only.
                    CompileGeneric(method, [stateMachine]);
                    foreach (var awaiter in awaiters)
                    {
                        CompileGeneric(method, [awaiter]);
                    }
                }
                else if (arity == 2)
                {
                    foreach (var awaiter in awaiters)
                    {
                        CompileGeneric(method, [awaiter, stateMachine]);
                    }
                }
            }
        }

        if (CoreStart is not null)
        {
            CompileGeneric(CoreStart, [stateMachine]);
        }

        if (StateMachineBox is not null && result is not null)
        {
            try
            {
                var box = StateMachineBox.MakeGenericType(result, stateMachine);
                foreach (var method in box.GetMethods(Declared))
                {
                    Compile(method);
                }

                foreach (var constructor in box.GetConstructors(Declared))
                {
                    Compile(constructor);
                }
            }
            catch (ArgumentException)
            {
                // A constraint the runtime's box sets and this state machine does not meet: compiled as it runs.
            }
        }

        // The awaiters (and the awaitables that make them), and a task whose result is a struct of this library's
        // (an enum, a tuple): the runtime's copies for int, bool and the like are compiled already.
        var structs = awaiters.Where(a => a.IsValueType).SelectMany(a => a.DeclaringType is { IsValueType: true } awaitable ? [a, Constructed(awaitable, a)] : new[] { a }).ToList();
        if (result is { IsValueType: true, IsPrimitive: false } && result != VoidResult)
        {
            structs.Add(result);
            structs.Add(typeof(Task<>).MakeGenericType(result));
        }

        foreach (var each in structs)
        {
            foreach (var method in each.GetMethods(Declared).Where(m => !m.IsGenericMethodDefinition && !m.IsAbstract))
            {
                Compile(method);
            }

            foreach (var constructor in each.GetConstructors(Declared))
            {
                Compile(constructor);
            }
        }
    }

    // The awaitable an awaiter is nested in, with the awaiter's type arguments (reflection names the open type).
    private static Type Constructed(Type awaitable, Type awaiter) =>
        awaitable.IsGenericTypeDefinition ? awaitable.MakeGenericType(awaiter.GetGenericArguments()) : awaitable;

    private static void CompileGeneric(MethodInfo definition, Type[] arguments)
    {
        try
        {
            Compile(definition.MakeGenericMethod(arguments));
        }
        catch (ArgumentException)
        {
            // The arguments do not meet the method's constraints (an awaiter of the other kind): not a path it runs.
        }
    }

    private static void Compile(MethodBase method)
    {
        try
        {
            // A method of a constructed type, or a constructed generic method, has its instantiation in its handle;
            // passing it again is refused ("the given generic instantiation was invalid").
            RuntimeHelpers.PrepareMethod(method.MethodHandle);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or TypeLoadException or BadImageFormatException)
        {
            // Not compilable on its own (for example an extern or a method of an interface's default body): skipped.
        }
    }
}
