namespace RedisHotSwap.Tests.Infrastructure;

/// <summary>
/// A section of the README that a test produces: the text between <c>&lt;!-- generated:{name} --&gt;</c> and
/// <c>&lt;!-- /generated:{name} --&gt;</c> must be what the test found. With <c>REDIS_HOTSWAP_UPDATE_README=1</c> the
/// test writes it instead, so the README says what the suite tried and saw, never what someone typed.
/// </summary>
internal static class ReadmeSection
{
    /// <summary>
    /// Checks (or writes) the section <paramref name="name"/>. Its lines are compared as a set: steps the coordinator
    /// pipelines may come in either order.
    /// </summary>
    public static void Check(string name, string content)
    {
        var readme = Path.Combine(RepositoryRoot(), "README.md");
        var text = File.ReadAllText(readme);
        var (open, close) = ($"<!-- generated:{name} -->", $"<!-- /generated:{name} -->");
        var start = text.IndexOf(open, StringComparison.Ordinal);
        var end = text.IndexOf(close, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, $"README.md has no section {open} ... {close}.");
        var current = text[(start + open.Length)..end].Trim('\n');
        var produced = content.Trim('\n');
        if (Environment.GetEnvironmentVariable("REDIS_HOTSWAP_UPDATE_README") == "1")
        {
            File.WriteAllText(readme, text[..(start + open.Length)] + "\n" + produced + "\n" + text[end..]);
            return;
        }

        static string Canonical(string lines) => string.Join('\n', lines.Split('\n').Order(StringComparer.Ordinal));
        Assert.True(Canonical(current) == Canonical(produced),
            $"README.md's section '{name}' is not what the suite produced; run the test with REDIS_HOTSWAP_UPDATE_README=1 to write it.\nProduced:\n{produced}");
    }

    // tests/RedisHotSwap.Tests/bin/{Configuration}/{tfm}/ → the repository.
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "RedisHotSwap.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("RedisHotSwap.sln not found above the test's output folder.");
    }
}
