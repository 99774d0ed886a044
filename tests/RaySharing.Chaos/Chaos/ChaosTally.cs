using RaySharing.Chaos.Infrastructure;

namespace RaySharing.Chaos.Chaos;

/// <summary>What the outcome of a check must be, beyond "exact bytes or typed".</summary>
internal readonly record struct Expect(string? Name)
{
    /// <summary>Exact bytes or any typed error: the kill may or may not have reached this object.</summary>
    public static Expect Any { get; } = new(null);

    /// <summary>Exact bytes: nothing the round killed owns or holds this object.</summary>
    public static Expect Ok { get; } = new("OK");

    /// <summary>Exactly this exception type.</summary>
    public static Expect Error(string exceptionTypeName) => new(exceptionTypeName);
}

/// <summary>Counts of a chaos run, and the details of everything that went wrong.</summary>
internal sealed class ChaosTally
{
    private const int MaxProblems = 40;

    private readonly Dictionary<KillKind, int> _kills = KillKinds.All.ToDictionary(k => k, _ => 0);
    private readonly Dictionary<KillKind, int> _landed = KillKinds.All.ToDictionary(k => k, _ => 0);
    private readonly SortedDictionary<string, int> _typed = new(StringComparer.Ordinal);
    private readonly List<string> _problems = [];
    private readonly List<TimeSpan> _ownerDiedLatencies = [];
    private int _problemCount;

    public int Rounds { get; set; }

    public int WorkersStarted { get; set; }

    public int HarnessGetsOk { get; private set; }

    public int DriverGetsOk { get; private set; }

    public int Wrong { get; private set; }

    public int Hangs { get; private set; }

    public int Untyped { get; private set; }

    public int Leaks { get; private set; }

    /// <summary>Typed or exact, but not what the design promises here: a lost acknowledged put, a late or wrong error.</summary>
    public int Violations { get; private set; }

    public bool Passed => Hangs == 0 && Leaks == 0 && Wrong == 0 && Untyped == 0 && Violations == 0;

    public void Kill(KillKind kind, bool landed)
    {
        _kills[kind]++;
        if (landed)
        {
            _landed[kind]++;
        }
    }

    /// <summary>Counts one get (or fetch, or borrow) and checks it against what the round expects.</summary>
    /// <param name="byDriver">True for an outcome the driver process printed.</param>
    /// <param name="where">Round and object, for the problem list.</param>
    public void Record(Outcome outcome, Expect expect, bool byDriver, string where)
    {
        switch (outcome.Kind)
        {
            case OutcomeKind.Ok when byDriver:
                DriverGetsOk++;
                break;
            case OutcomeKind.Ok:
                HarnessGetsOk++;
                break;
            case OutcomeKind.Typed:
                _typed[outcome.Name] = _typed.GetValueOrDefault(outcome.Name) + 1;
                break;
            case OutcomeKind.Wrong:
                Wrong++;
                Problem($"WRONG bytes: {where}: {outcome.Name}");
                return;
            case OutcomeKind.Hang:
                Hang($"{where}: {outcome.Name}");
                return;
            default:
                Untyped++;
                Problem($"UNTYPED: {where}: {outcome.Name}");
                return;
        }

        if (expect.Name is { } expected && expected != outcome.Name)
        {
            Violation($"{where}: expected {expected}, got {outcome.Name}");
        }
    }

    public void Hang(string detail)
    {
        Hangs++;
        Problem($"HANG: {detail}");
    }

    public void Leak(string detail)
    {
        Leaks++;
        Problem($"LEAK: {detail}");
    }

    public void Violation(string detail)
    {
        Violations++;
        Problem($"VIOLATION: {detail}");
    }

    public void OwnerDiedAfter(TimeSpan latency) => _ownerDiedLatencies.Add(latency);

    public void AddTo(Report report, TimeSpan elapsed, TimeSpan lease)
    {
        report.Row("rounds", Rounds);
        report.Row("elapsed", $"{elapsed.TotalSeconds:0.0} s ({elapsed.TotalSeconds / Math.Max(1, Rounds):0.00} s/round)");
        report.Row("workers started", WorkersStarted);
        report.Row("kills", _kills.Values.Sum());
        foreach (var kind in KillKinds.All)
        {
            report.Row($"  {kind.Label()}", $"{_kills[kind]} ({_landed[kind]} landed {kind.Landing()})");
        }

        report.Row("gets ok", $"{HarnessGetsOk + DriverGetsOk} (harness {HarnessGetsOk}, driver {DriverGetsOk})");
        report.Row("typed errors", _typed.Values.Sum());
        foreach (var (name, count) in _typed)
        {
            report.Row($"  {name}", count);
        }

        report.Row("owner-died latency after creator kill", _ownerDiedLatencies.Count == 0
            ? "n/a"
            : $"max {_ownerDiedLatencies.Max().TotalMilliseconds:0} ms, mean {_ownerDiedLatencies.Average(l => l.TotalMilliseconds):0} ms (bound: lease {lease.TotalMilliseconds:0} ms + 1 s)");
        report.Row("wrong bytes", Wrong);
        report.Row("hangs", Hangs);
        report.Row("untyped", Untyped);
        report.Row("leaks", Leaks);
        report.Row("violations", Violations);
        report.Problems(_problems);
        if (_problemCount > _problems.Count)
        {
            report.Problems([$"... and {_problemCount - _problems.Count} more"]);
        }
    }

    private void Problem(string detail)
    {
        _problemCount++;
        if (_problems.Count < MaxProblems)
        {
            _problems.Add(detail);
        }

        // Live, so a long run shows trouble as it happens.
        Console.WriteLine($"    ! {detail}");
    }
}
