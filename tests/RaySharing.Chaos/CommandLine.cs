using System.Globalization;

namespace RaySharing.Chaos;

/// <summary>The role and <c>--name value</c> options of one process, parsed by hand to keep the harness dependency-free.</summary>
internal sealed class CommandLine
{
    public const string Usage =
        """
        usage: RaySharing.Chaos chaos --rounds N [--seed S] [--out FILE] [--worker-dll PATH]
               RaySharing.Chaos cluster-chaos --rounds N [--seed S] [--out FILE] [--worker-dll PATH]   (needs redis-server on PATH)
               RaySharing.Chaos load [--sessions N] --seconds S [--seed S] [--out FILE] [--worker-dll PATH]
        child roles, started by the harness:
               RaySharing.Chaos executor --address URI --holder NAME --key KEY --size BYTES --seed S [--path shm|network|channel]
               RaySharing.Chaos holder-creator --address URI --holder NAME --key KEY --size BYTES --seed S [--path shm|network|channel]
               RaySharing.Chaos driver --address URI --holder NAME --key KEY [--path shm|network|channel]
        """;

    private static readonly string[] Roles = ["chaos", "cluster-chaos", "load", "executor", "holder-creator", "driver"];

    private readonly Dictionary<string, string> _values;

    private CommandLine(string role, string[] args, Dictionary<string, string> values)
    {
        Role = role;
        Arguments = args;
        _values = values;
    }

    /// <summary>One of <c>chaos</c>, <c>cluster-chaos</c>, <c>load</c>, <c>executor</c>, <c>holder-creator</c>, <c>driver</c>.</summary>
    public string Role { get; }

    /// <summary>The raw arguments, for the report's record of the command line.</summary>
    public IReadOnlyList<string> Arguments { get; }

    /// <exception cref="ArgumentException">An unknown role, an option without a value, or a repeated option.</exception>
    public static CommandLine Parse(string[] args)
    {
        if (args.Length == 0 || !Roles.Contains(args[0]))
        {
            throw new ArgumentException(args.Length == 0 ? "A role is required." : $"Unknown role '{args[0]}'.");
        }

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 1; i < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"Expected '--name value' pairs; '{args[i]}' has no value.");
            }

            if (!values.TryAdd(args[i], args[i + 1]))
            {
                throw new ArgumentException($"{args[i]} is given twice.");
            }
        }

        return new CommandLine(args[0], args, values);
    }

    public string Required(string name) =>
        _values.TryGetValue(name, out var value) ? value : throw new ArgumentException($"{Role} needs {name}.");

    public string? Optional(string name) => _values.GetValueOrDefault(name);

    /// <summary>The integer option <paramref name="name"/>; required when <paramref name="defaultValue"/> is null.</summary>
    public int Int(string name, int? defaultValue, int min, int max)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return defaultValue ?? throw new ArgumentException($"{Role} needs {name}.");
        }

        return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new ArgumentException($"{name} must be an integer from {min} to {max}; got '{text}'.");
    }

    public Uri Address() =>
        Uri.TryCreate(Required("--address"), UriKind.Absolute, out var uri)
            ? uri
            : throw new ArgumentException($"--address must be an absolute URI such as http://127.0.0.1:7480; got '{Required("--address")}'.");

    /// <summary>Rejects options this role does not know, so a typo fails loudly instead of being ignored.</summary>
    public void Allow(params string[] names)
    {
        foreach (var name in _values.Keys)
        {
            if (!names.Contains(name))
            {
                throw new ArgumentException($"{Role} does not take {name}; it takes {string.Join(", ", names)}.");
            }
        }
    }
}
