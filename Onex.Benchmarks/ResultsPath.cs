namespace Onex.Benchmarks;

/// <summary>Where the console measurements write their reports: <c>Onex.Benchmarks/results/</c> of the checkout they run in.</summary>
internal static class ResultsPath
{
    /// <summary><c>Onex.Benchmarks/results/<paramref name="fileName"/></c>, found from the working directory up; else the working directory.</summary>
    public static string For(string fileName)
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            var results = Path.Combine(dir.FullName, "Onex.Benchmarks", "results");
            if (Directory.Exists(results)) return Path.Combine(results, fileName);
        }
        return Path.Combine(Directory.GetCurrentDirectory(), fileName);
    }
}
