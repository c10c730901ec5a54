using System.CommandLine;
using System.CommandLine.Parsing;
using RedisHotSwap.Coordinator;

namespace RedisHotSwap.Cli;

/// <summary>An option of a verb and what its value sets in <see cref="CoordinatorOptions"/>.</summary>
internal sealed class Setting
{
    private readonly Action<ParseResult, CoordinatorOptions> apply;

    private Setting(Option option, Action<ParseResult, CoordinatorOptions> apply)
    {
        Option = option;
        this.apply = apply;
    }

    public Option Option { get; }

    /// <summary>An option with a default, shown in help.</summary>
    public static Setting Of<T>(string name, string description, T defaultValue, Action<CoordinatorOptions, T> set, bool hidden = false)
    {
        var option = new Option<T>(name) { Description = description, DefaultValueFactory = _ => defaultValue, Hidden = hidden };
        if (typeof(T).IsEnum)
        {
            option.CustomParser = result => (T)Named(name, typeof(T), result)!;
        }

        return new Setting(option, (parse, options) => set(options, parse.GetValue(option)!));
    }

    /// <summary>
    /// A choice by its name, any case (<c>own</c>, <c>Own</c>); not by number, nor several joined by commas, which
    /// <see cref="Enum.Parse(Type, string, bool)"/> would take for a value no option has.
    /// </summary>
    private static object? Named(string option, Type choices, ArgumentResult result)
    {
        var token = result.Tokens.Count > 0 ? result.Tokens[^1].Value : string.Empty;
        if (Enum.GetNames(choices).FirstOrDefault(n => string.Equals(n, token, StringComparison.OrdinalIgnoreCase)) is { } chosen)
        {
            return Enum.Parse(choices, chosen);
        }

        result.AddError($"{option} takes one of: {string.Join(", ", Enum.GetNames(choices).Select(n => n.ToLowerInvariant()))}.");
        return Activator.CreateInstance(choices);
    }

    /// <summary>
    /// A text option that falls back on an environment variable. Not a default value: help prints defaults, and
    /// these hold passwords.
    /// </summary>
    public static Setting Text(string name, string description, string variable, Action<CoordinatorOptions, string> set)
    {
        var option = new Option<string>(name) { Description = description };
        return new Setting(option, (parse, options) => set(options, parse.GetValue(option) is { Length: > 0 } value ? value : Environment.GetEnvironmentVariable(variable) ?? string.Empty));
    }

    public void Apply(ParseResult parse, CoordinatorOptions options) => apply(parse, options);
}
