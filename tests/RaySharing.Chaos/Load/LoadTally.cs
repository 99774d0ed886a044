using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Load;

/// <summary>The calls a load session makes.</summary>
internal enum LoadOp
{
    Put,
    Register,
    Fetch,
    Get,
    Unregister,
    Release,
}

/// <summary>Counts of one load session (not thread-safe: one per session, merged at the end).</summary>
internal sealed class LoadTally
{
    private const int MaxProblems = 40;

    private static readonly LoadOp[] AllOps = Enum.GetValues<LoadOp>();

    private readonly Dictionary<LoadOp, List<double>> _latenciesMs = AllOps.ToDictionary(op => op, _ => new List<double>());
    private readonly SortedDictionary<string, int> _errors = new(StringComparer.Ordinal);
    private readonly List<string> _problems = [];

    /// <summary>Fetches or unregisters that did not see exactly what this session registered.</summary>
    public int Lost { get; private set; }

    public int Wrong { get; private set; }

    /// <summary>Every failed call: none is expected, there is no chaos in a load run.</summary>
    public int Errors => _errors.Values.Sum();

    public IReadOnlyList<string> Problems => _problems;

    public void Succeeded(LoadOp op, TimeSpan latency) => _latenciesMs[op].Add(latency.TotalMilliseconds);

    public void Failed(LoadOp op, Outcome outcome, string where) => Failed(op.ToString(), outcome, where);

    /// <summary>Counts a failed call (or a client disposal that threw); every one counts against the run.</summary>
    public void Failed(string call, Outcome outcome, string where)
    {
        var name = $"{call}: {outcome.Name}";
        _errors[name] = _errors.GetValueOrDefault(name) + 1;
        Problem($"{where}: {call} failed: {outcome}");
    }

    public void LostRegistration(string detail)
    {
        Lost++;
        Problem($"LOST: {detail}");
    }

    public void WrongBytes(string detail)
    {
        Wrong++;
        Problem($"WRONG bytes: {detail}");
    }

    public void Merge(LoadTally other)
    {
        foreach (var op in AllOps)
        {
            _latenciesMs[op].AddRange(other._latenciesMs[op]);
        }

        foreach (var (name, count) in other._errors)
        {
            _errors[name] = _errors.GetValueOrDefault(name) + count;
        }

        Lost += other.Lost;
        Wrong += other.Wrong;
        foreach (var problem in other._problems)
        {
            Problem(problem);
        }
    }

    public void AddTo(Report report, TimeSpan duration)
    {
        var total = _latenciesMs.Values.Sum(l => l.Count);
        report.Row("ops", $"{total} ({total / duration.TotalSeconds:0} ops/s)");
        foreach (var op in AllOps)
        {
            var latencies = _latenciesMs[op];
            latencies.Sort();
            report.Row($"  {op.ToString().ToLowerInvariant()}", latencies.Count == 0
                ? "0"
                : $"{latencies.Count} ({latencies.Count / duration.TotalSeconds:0} ops/s, p50 {Percentile(latencies, 0.50):0.0} ms, p99 {Percentile(latencies, 0.99):0.0} ms)");
        }

        report.Row("lost registrations", Lost);
        report.Row("wrong bytes", Wrong);
        report.Row("errors", Errors == 0 ? "0" : $"{Errors}: {Report.Breakdown(_errors)}");
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

    private void Problem(string detail)
    {
        if (_problems.Count < MaxProblems)
        {
            _problems.Add(detail);
        }
    }
}
