using System.Globalization;

namespace RedisHotSwap.Cli;

/// <summary>The one way numbers are written for a person: counts with separators, bytes in binary units, durations in words.</summary>
internal static class Format
{
    public static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Bytes(long value) => value switch
    {
        < 1024 => $"{Count(value)} B",
        < 1024 * 1024 => Unit(value / 1024.0, "KiB"),
        < 1024L * 1024 * 1024 => Unit(value / (1024.0 * 1024), "MiB"),
        _ => Unit(value / (1024.0 * 1024 * 1024), "GiB"),
    };

    public static string Duration(TimeSpan value) => value.TotalSeconds switch
    {
        < 60 => $"{value.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} s",
        < 3600 => $"{(int)value.TotalMinutes} min {value.Seconds:00} s",
        _ => $"{(int)value.TotalHours} h {value.Minutes:00} min",
    };

    public static string Percent(double fraction) => $"{(fraction * 100).ToString("0", CultureInfo.InvariantCulture)} %";

    private static string Unit(double value, string unit) => $"{value.ToString("0.0", CultureInfo.InvariantCulture)} {unit}";
}
