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

/// <summary>Who made a call, for the count of successful gets.</summary>
internal enum Source
{
    /// <summary>A get by the harness.</summary>
    HarnessGet,

    /// <summary>A get the driver process reported.</summary>
    DriverGet,

    /// <summary>A fetch, borrow, unregister or release: its failures count, its successes are not gets.</summary>
    OtherCall,
}

/// <summary>Counts of a chaos run, and the details of everything that went wrong.</summary>
internal sealed class ChaosTally
{
    /// <summary>A tally of a harness whose rounds kill one of <paramref name="kinds"/> each.</summary>
    public ChaosTally(KillKind[] kinds)
    {
        _kinds = kinds;
        _kills = kinds.ToDictionary(k => k, _ => 0);
        _landings = kinds.ToDictionary(k => k, _ => new SortedDictionary<string, int>(StringComparer.Ordinal));
    }

    private const int MaxProblems = 40;

    private readonly KillKind[] _kinds;
    private readonly Dictionary<KillKind, int> _kills;
    private readonly Dictionary<KillKind, SortedDictionary<string, int>> _landings;
    private readonly SortedDictionary<string, int> _typed = new(StringComparer.Ordinal);
    private readonly List<string> _problems = [];
    private readonly List<TimeSpan> _ownerDiedLatencies = [];
    private int _problemCount;

    public int Rounds { get; set; }

    public int WorkersStarted { get; set; }

    /// <summary>Children started on each path: the worker's shared memory, gRPC only, or the channel over TCP.</summary>
    public int SharedMemoryChildren { get; set; }

    public int NetworkChildren { get; set; }

    public int ChannelChildren { get; set; }

    public int HarnessGetsOk { get; private set; }

    public int DriverGetsOk { get; private set; }

    public int Wrong { get; private set; }

    public int Hangs { get; private set; }

    public int Untyped { get; private set; }

    public int Leaks { get; private set; }

    /// <summary>
    /// Children that were never killed yet lost their session: the worker ended it because no renewal
    /// arrived within the lease. On an overloaded machine a starved process misses its renewals; this
    /// is the design's rule working (typed, bounded), so it is reported but does not fail the run.
    /// </summary>
    public int LeaseLapses { get; private set; }

    /// <summary>Typed or exact, but not what the design promises here: a lost acknowledged put, a late or wrong error.</summary>
    public int Violations { get; private set; }

    public bool Passed => Hangs == 0 && Leaks == 0 && Wrong == 0 && Untyped == 0 && Violations == 0;

    /// <summary>Counts a kill and where it landed in its victim's work (for example "mid-put").</summary>
    public void Kill(KillKind kind, string landing)
    {
        _kills[kind]++;
        _landings[kind][landing] = _landings[kind].GetValueOrDefault(landing) + 1;
    }

    /// <summary>Counts the outcome of one call and checks it against what the round expects.</summary>
    /// <param name="where">Round and object, for the problem list.</param>
    public void Record(Outcome outcome, Expect expect, Source source, string where)
    {
        switch (outcome.Kind)
        {
            case OutcomeKind.Ok:
                if (source == Source.DriverGet)
                {
                    DriverGetsOk++;
                }
                else if (source == Source.HarnessGet)
                {
                    HarnessGetsOk++;
                }

                break;
            case OutcomeKind.Typed:
                _typed[outcome.Name] = _typed.GetValueOrDefault(outcome.Name) + 1;
                break;
            case OutcomeKind.Wrong:
                Wrong++;
                Problem($"WRONG bytes: {where}: {outcome}");
                return;
            case OutcomeKind.Hang:
                Hang($"{where}: {outcome}");
                return;
            default:
                Untyped++;
                Problem($"UNTYPED: {where}: {outcome}");
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

    public void LeaseLapsed(string detail)
    {
        LeaseLapses++;
        Problem($"LEASE LAPSED (not failing the run): {detail}");
    }

    public void OwnerDiedAfter(TimeSpan latency) => _ownerDiedLatencies.Add(latency);

    public TallySnapshot Snapshot() => new(HarnessGetsOk + DriverGetsOk, _typed.Values.Sum(), _problemCount);

    public void AddTo(Report report, TimeSpan elapsed, TimeSpan lease)
    {
        report.Row("rounds", Rounds);
        report.Row("elapsed", $"{elapsed.TotalSeconds:0.0} s ({elapsed.TotalSeconds / Math.Max(1, Rounds):0.00} s/round)");
        report.Row("workers started", WorkersStarted);
        report.Row("children by path", $"{SharedMemoryChildren} through shared memory, {NetworkChildren} over gRPC only, {ChannelChildren} over the channel (TCP)");
        report.Row("kills", _kills.Values.Sum());
        foreach (var kind in _kinds)
        {
            report.Row($"  {kind.Label()}", $"{_kills[kind]} (landed {Report.Breakdown(_landings[kind])})");
        }

        report.Row("gets ok", $"{HarnessGetsOk + DriverGetsOk} (harness {HarnessGetsOk}, driver {DriverGetsOk})");
        report.Row("typed errors", _typed.Values.Sum());
        foreach (var (name, count) in _typed)
        {
            report.Row($"  {name}", count);
        }

        if (_kinds.Contains(KillKind.HolderCreator))
        {
            report.Row("owner-died latency after creator kill", _ownerDiedLatencies.Count == 0
                ? "n/a"
                : $"min {_ownerDiedLatencies.Min().TotalMilliseconds:0} ms, mean {_ownerDiedLatencies.Average(l => l.TotalMilliseconds):0} ms, max {_ownerDiedLatencies.Max().TotalMilliseconds:0} ms (bound: lease {lease.TotalMilliseconds:0} ms + 1 s)");
        }

        report.Row("wrong bytes", Wrong);
        report.Row("hangs", Hangs);
        report.Row("untyped", Untyped);
        report.Row("leaks", Leaks);
        report.Row("violations", Violations);
        report.Row("live children whose lease lapsed", LeaseLapses);
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

/// <summary>Running totals, to print what one round added.</summary>
internal readonly record struct TallySnapshot(int Ok, int Typed, int Problems)
{
    public string Since(TallySnapshot before) =>
        $"ok {Ok - before.Ok,2}, typed {Typed - before.Typed,2}, problems {Problems - before.Problems}";
}
