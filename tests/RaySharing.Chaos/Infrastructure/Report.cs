using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace RaySharing.Chaos.Infrastructure;

/// <summary>A two-column result table, printed aligned on the console and optionally written as markdown.</summary>
internal sealed class Report(string title, CommandLine commandLine)
{
    private readonly List<(string Measure, string Value)> _rows = [];
    private readonly List<string> _problems = [];

    public void Row(string measure, string value) => _rows.Add((measure, value));

    public void Row(string measure, long value) => Row(measure, value.ToString(CultureInfo.InvariantCulture));

    public void Problems(IEnumerable<string> problems) => _problems.AddRange(problems);

    public void Print(bool passed)
    {
        var width = _rows.Max(r => r.Measure.Length);
        Console.WriteLine();
        Console.WriteLine($"{title}: {(passed ? "PASS" : "FAIL")}");
        foreach (var (measure, value) in _rows)
        {
            Console.WriteLine($"  {measure.PadRight(width)}  {value}");
        }

        foreach (var problem in _problems)
        {
            Console.WriteLine($"  problem: {problem}");
        }
    }

    public void WriteMarkdown(string path, bool passed)
    {
        var markdown = new StringBuilder();
        markdown.AppendLine(CultureInfo.InvariantCulture, $"# {title}: {(passed ? "PASS" : "FAIL")}");
        markdown.AppendLine();
        markdown.AppendLine(CultureInfo.InvariantCulture, $"- Command: `dotnet RaySharing.Chaos.dll {string.Join(' ', commandLine.Arguments)}`");
        markdown.AppendLine(CultureInfo.InvariantCulture, $"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC");
        markdown.AppendLine(CultureInfo.InvariantCulture, $"- Machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}");
        markdown.AppendLine();
        markdown.AppendLine("| Measure | Value |");
        markdown.AppendLine("|---|---|");
        foreach (var (measure, value) in _rows)
        {
            markdown.AppendLine(CultureInfo.InvariantCulture, $"| {measure} | {value.Replace("|", "\\|", StringComparison.Ordinal)} |");
        }

        if (_problems.Count > 0)
        {
            markdown.AppendLine();
            markdown.AppendLine("## Problems");
            markdown.AppendLine();
            foreach (var problem in _problems)
            {
                markdown.AppendLine(CultureInfo.InvariantCulture, $"- {problem}");
            }
        }

        File.WriteAllText(path, markdown.ToString());
    }

    /// <summary>"name n, name n" for a breakdown, or "0".</summary>
    public static string Breakdown<TKey>(IEnumerable<KeyValuePair<TKey, int>> counts) where TKey : notnull
    {
        var parts = counts.Where(c => c.Value > 0).Select(c => $"{c.Key} {c.Value}").ToList();
        return parts.Count == 0 ? "0" : string.Join(", ", parts);
    }
}
