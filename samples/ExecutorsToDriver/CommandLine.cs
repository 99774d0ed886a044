using System.Globalization;

namespace ExecutorsToDriver;

/// <summary>The mode and <c>--name value</c> options of one process, parsed by hand to keep the sample dependency-free.</summary>
internal sealed class CommandLine
{
    public const string Usage =
        """
        usage: ExecutorsToDriver [run] [--executors N] [--rows R] [--address URI] [--driver-address URI]
               ExecutorsToDriver executor --address URI --job ID --partition I [--rows R]
               ExecutorsToDriver driver --address URI --job ID --partitions N [--rows R]
        """;

    private static readonly string[] Modes = ["run", "executor", "driver"];
    private static readonly string[] Names = ["--executors", "--rows", "--address", "--driver-address", "--job", "--partition", "--partitions"];

    private readonly Dictionary<string, string> _values;

    private CommandLine(string mode, Dictionary<string, string> values)
    {
        Mode = mode;
        _values = values;
    }

    /// <summary><c>run</c>, <c>executor</c> or <c>driver</c>.</summary>
    public string Mode { get; }

    /// <exception cref="ArgumentException">An unknown mode or option, or an option without a value.</exception>
    public static CommandLine Parse(string[] args)
    {
        var mode = "run";
        var first = 0;
        if (args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal))
        {
            mode = Modes.Contains(args[0]) ? args[0] : throw new ArgumentException($"Unknown mode '{args[0]}'.");
            first = 1;
        }

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = first; i < args.Length; i += 2)
        {
            if (!Names.Contains(args[i]))
            {
                throw new ArgumentException($"Unknown option '{args[i]}'.");
            }

            values[args[i]] = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value.");
        }

        return new CommandLine(mode, values);
    }

    public string Required(string name) =>
        _values.TryGetValue(name, out var value) ? value : throw new ArgumentException($"{Mode} needs {name}.");

    /// <summary>The integer option <paramref name="name"/>; required when <paramref name="defaultValue"/> is null.</summary>
    public int Int(string name, int? defaultValue, int min, int max)
    {
        if (!_values.TryGetValue(name, out var text))
        {
            return defaultValue ?? throw new ArgumentException($"{Mode} needs {name}.");
        }

        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max
            ? value
            : throw new ArgumentException($"{name} must be an integer from {min} to {max}; got '{text}'.");
    }

    /// <summary>The worker's <c>--address</c>, or null when none was given.</summary>
    public Uri? Address() => Uri("--address");

    /// <summary>
    /// The master's <c>--driver-address</c>: the worker the driver connects to, another worker of the same cluster
    /// than the executors' (<c>--address</c>); null when none was given (the driver uses <c>--address</c> too).
    /// </summary>
    public Uri? DriverAddress() => Uri("--driver-address");

    private Uri? Uri(string name) =>
        !_values.TryGetValue(name, out var text) ? null
        : System.Uri.TryCreate(text, UriKind.Absolute, out var uri) ? uri
        : throw new ArgumentException($"{name} must be an absolute URI such as http://127.0.0.1:7480; got '{text}'.");

    public Uri RequiredAddress() => Address() ?? throw new ArgumentException($"{Mode} needs --address.");
}
