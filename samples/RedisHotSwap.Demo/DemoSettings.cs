namespace RedisHotSwap.Demo;

/// <summary>The demo's options, as given on the command line.</summary>
internal sealed record DemoSettings(int Instances, int Keys, string? Cutover, string? Source, string? Target, string OutputDirectory)
{
    public const string MigrationId = "demo";
}
