using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.Logging;
using RaySharing.Worker;

namespace RaySharing.Worker.Host;

/// <summary>
/// The host's command line: one option per <see cref="WorkerOptions"/> property, each with the default the
/// options class states, plus <c>--log-level</c>. Ranges are not checked here but by the worker's one
/// validator; this class only turns text into values and says which flag a failing option came from.
/// </summary>
internal sealed class WorkerCommandLine
{
    public const string Name = "raysharing-worker";

    private static readonly WorkerOptions Defaults = new();

    private readonly Command _command;
    private readonly List<Action<ParseResult, WorkerOptions>> _apply = [];
    private readonly Dictionary<string, string> _flagOfOption = new(StringComparer.Ordinal);

    public WorkerCommandLine()
    {
        _command = new Command(Name,
            "Runs a RaySharing worker: the object store, holders and sessions, served over gRPC (HTTP/2, cleartext). " +
            "Prints 'listening <address>' on stdout once ready. SIGTERM or Ctrl+C stops it gracefully (exit 0). " +
            "Exit codes: 0 stopped by a signal, 1 the worker failed, 2 bad command line or option, 3 cannot listen on the address, " +
            "4 lost its cluster registration (--redis unreachable for a whole --cluster-lease-ms), 5 cannot reach the --redis directory at start.")
        {
            new System.CommandLine.Help.HelpOption(),
            new VersionOption(),
        };

        Add(new Option<string>("--listen") { HelpName = "ip", Description = "The IP address to listen on; 0.0.0.0 for every interface.", DefaultValueFactory = _ => Defaults.ListenAddress },
            nameof(WorkerOptions.ListenAddress), (o, v) => o.ListenAddress = v);
        Add(new Option<int>("--port") { HelpName = "port", Description = "The TCP port to listen on; 0 picks a free one (read it from the 'listening' line).", DefaultValueFactory = _ => Defaults.Port },
            nameof(WorkerOptions.Port), (o, v) => o.Port = v);
        Add(new Option<string?>("--advertise") { HelpName = "uri", Description = "The address written into ref envelopes for other hosts to reach this worker, such as http://10.0.0.5:7480. [default: http://<listen>:<bound port>]" },
            nameof(WorkerOptions.AdvertisedAddress), (o, v) => o.AdvertisedAddress = v);

        var capacity = new Option<long>("--capacity-mb") { HelpName = "MiB", Description = "The object store's capacity, in MiB; a put that does not fit fails with STORE_FULL.", DefaultValueFactory = _ => Defaults.StoreCapacityBytes >> 20 };
        capacity.Validators.Add(result =>
        {
            // The one conversion that can overflow: MiB to bytes. A value that does not parse is the parser's to report.
            if (result.Tokens.Count == 0 || !long.TryParse(result.Tokens[^1].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var mib))
            {
                return;
            }

            if (mib <= 0)
            {
                // Said here in the flag's unit; the option's own rule would say it in bytes.
                result.AddError($"--capacity-mb must be positive; got {mib.ToString(CultureInfo.InvariantCulture)}.");
            }
            else if (mib > long.MaxValue >> 20)
            {
                result.AddError($"--capacity-mb {mib.ToString(CultureInfo.InvariantCulture)} is too large: at most {(long.MaxValue >> 20).ToString(CultureInfo.InvariantCulture)} MiB.");
            }
        });
        Add(capacity, nameof(WorkerOptions.StoreCapacityBytes), (o, v) => o.StoreCapacityBytes = v << 20);

        AddBool("--shared-memory", "Let clients on this host move bytes through shared memory (an arena in /dev/shm that processes of this user can map); false sends every byte over the network.",
            nameof(WorkerOptions.SharedMemory), Defaults.SharedMemory, (o, v) => o.SharedMemory = v);
        Add(new Option<string>("--shared-memory-dir") { HelpName = "path", Description = "The tmpfs directory the shared-memory arena is made in; a tmpfs mounted with huge=always gives it 2 MiB pages.", DefaultValueFactory = _ => Defaults.SharedMemoryDirectory },
            nameof(WorkerOptions.SharedMemoryDirectory), (o, v) => o.SharedMemoryDirectory = v);
        AddBool("--channel", "Serve the binary channel beside gRPC: small calls and bulk bytes at a fraction of gRPC's cost; false leaves gRPC the only transport.",
            nameof(WorkerOptions.Channel), Defaults.Channel, (o, v) => o.Channel = v);
        Add(new Option<int>("--channel-port") { HelpName = "port", Description = "The channel's TCP port on the listen address; 0 picks a free one (sessions learn it when they open).", DefaultValueFactory = _ => Defaults.ChannelPort },
            nameof(WorkerOptions.ChannelPort), (o, v) => o.ChannelPort = v);
        Add(new Option<string>("--channel-socket-dir") { HelpName = "path", Description = "The directory of the channel's Unix domain socket for clients on this host; empty for none.", DefaultValueFactory = _ => Defaults.ChannelSocketDirectory },
            nameof(WorkerOptions.ChannelSocketDirectory), (o, v) => o.ChannelSocketDirectory = v);

        AddMilliseconds("--lease-ms", "The lease granted to a session that asks for none.", nameof(WorkerOptions.DefaultLease), Defaults.DefaultLease, (o, v) => o.DefaultLease = v);
        AddMilliseconds("--min-lease-ms", "The shortest lease a session may ask for; shorter requests are raised to it.", nameof(WorkerOptions.MinLease), Defaults.MinLease, (o, v) => o.MinLease = v);
        AddMilliseconds("--max-lease-ms", "The longest lease a session may ask for; longer requests are lowered to it.", nameof(WorkerOptions.MaxLease), Defaults.MaxLease, (o, v) => o.MaxLease = v);
        AddMilliseconds("--lease-check-ms", "How often sessions whose lease lapsed are looked for; at most --min-lease-ms.", nameof(WorkerOptions.LeaseCheckInterval), Defaults.LeaseCheckInterval, (o, v) => o.LeaseCheckInterval = v);
        AddMilliseconds("--stream-idle-timeout-ms", "How long a streaming put or get may wait for its next chunk before it is abandoned.", nameof(WorkerOptions.StreamIdleTimeout), Defaults.StreamIdleTimeout, (o, v) => o.StreamIdleTimeout = v);

        AddInt("--max-unary-object-bytes", "bytes", "The largest object a unary put or get carries; larger ones stream. At most --max-message-bytes less 4096.", nameof(WorkerOptions.MaxUnaryObjectBytes), Defaults.MaxUnaryObjectBytes, (o, v) => o.MaxUnaryObjectBytes = v);
        AddInt("--stream-chunk-bytes", "bytes", "The chunk size of a streaming get whose caller states none: 4096 to 4194304, at most --max-message-bytes less 4096.", nameof(WorkerOptions.StreamChunkBytes), Defaults.StreamChunkBytes, (o, v) => o.StreamChunkBytes = v);
        AddInt("--max-message-bytes", "bytes", "The largest gRPC message sent or received; at least 2097152 (2 MiB).", nameof(WorkerOptions.MaxMessageBytes), Defaults.MaxMessageBytes, (o, v) => o.MaxMessageBytes = v);
        AddInt("--tombstone-capacity", "count", "How many freed objects are remembered, so a get of one says OBJECT_FREED rather than OBJECT_NOT_FOUND; 0 remembers none.", nameof(WorkerOptions.TombstoneCapacity), Defaults.TombstoneCapacity, (o, v) => o.TombstoneCapacity = v);

        Add(new Option<string?>("--spill-dir") { HelpName = "path", Description = "Where objects spill to disk when memory runs short (the worker makes, and removes, its own subdirectory there). [default: the system's temporary directory]" },
            nameof(WorkerOptions.SpillDirectory), (o, v) => o.SpillDirectory = v);
        var spillCapacity = new Option<long>("--spill-capacity-mb") { HelpName = "MiB", Description = "The most MiB of objects spilled to disk once memory passes 90% of --capacity-mb; 0 turns spilling off.", DefaultValueFactory = _ => Defaults.SpillCapacityBytes >> 20 };
        spillCapacity.Validators.Add(result =>
        {
            if (result.Tokens.Count == 0 || !long.TryParse(result.Tokens[^1].Value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var mib))
            {
                return;
            }

            if (mib < 0)
            {
                result.AddError($"--spill-capacity-mb must not be negative (0 turns spilling off); got {mib.ToString(CultureInfo.InvariantCulture)}.");
            }
            else if (mib > long.MaxValue >> 20)
            {
                result.AddError($"--spill-capacity-mb {mib.ToString(CultureInfo.InvariantCulture)} is too large: at most {(long.MaxValue >> 20).ToString(CultureInfo.InvariantCulture)} MiB.");
            }
        });
        Add(spillCapacity, nameof(WorkerOptions.SpillCapacityBytes), (o, v) => o.SpillCapacityBytes = v << 20);

        Add(new Option<string?>("--redis") { HelpName = "configuration", Description = "Join a cluster: the Redis directory the workers share, as a StackExchange.Redis configuration string (redis-host:6379, or host:6379,password=...). The start fails if it cannot be reached. [default: none, a single worker]" },
            nameof(WorkerOptions.Redis), (o, v) => o.Redis = v);
        Add(new Option<string>("--cluster") { HelpName = "name", Description = "The cluster to join in the --redis directory: workers with the same name share holders. 1 to 64 letters, digits, '-', '_' or '.'.", DefaultValueFactory = _ => Defaults.ClusterName },
            nameof(WorkerOptions.ClusterName), (o, v) => o.ClusterName = v);
        AddMilliseconds("--cluster-lease-ms", "How long this worker's registration in the --redis directory lives unrenewed (renewed every third of it); a worker that cannot renew it for this long stops (exit 4), as the cluster counts it dead.",
            nameof(WorkerOptions.ClusterLease), Defaults.ClusterLease, (o, v) => o.ClusterLease = v);

        LogLevelOption = new Option<LogLevel>("--log-level")
        {
            HelpName = "level",
            Description = "The least severe log event written to stderr: Trace, Debug, Information (adds ASP.NET Core's lines for every request), Warning, Error, Critical or None.",
            DefaultValueFactory = _ => LogLevel.Warning,
        };
        _command.Options.Add(LogLevelOption);
    }

    public Option<LogLevel> LogLevelOption { get; }

    public ParseResult Parse(IReadOnlyList<string> args) => _command.Parse(args);

    /// <summary>The worker's options as the command line sets them; every option not given keeps its default.</summary>
    public WorkerOptions ToOptions(ParseResult result)
    {
        var options = new WorkerOptions();
        foreach (var apply in _apply)
        {
            apply(result, options);
        }

        return options;
    }

    /// <summary>A cluster flag given without <c>--redis</c>, which alone makes a worker join a cluster; null when there is none.</summary>
    public string? ClusterFlagWithoutRedis(ParseResult result)
    {
        bool Given(string flag) => _command.Options.First(o => o.Name == flag) is var option && result.GetResult(option) is { Implicit: false };
        return Given("--redis") ? null : new[] { "--cluster", "--cluster-lease-ms" }.FirstOrDefault(Given);
    }

    /// <summary>The flag that sets a <see cref="WorkerOptions"/> property, for an error message.</summary>
    public string FlagOf(string option) => _flagOfOption.TryGetValue(option, out var flag) ? flag : option;

    private void Add<T>(Option<T> option, string property, Action<WorkerOptions, T> apply)
    {
        ParseInTheFlagsTerms(option);
        _command.Options.Add(option);
        _flagOfOption[property] = option.Name;
        _apply.Add((result, options) => apply(options, result.GetValue(option)!));
    }

    /// <summary>
    /// Numbers parsed here, so a value of the wrong kind is reported in the flag's terms
    /// ("--channel-port takes a whole number; got 'abc'") rather than as a .NET type or a stray argument.
    /// </summary>
    private static void ParseInTheFlagsTerms<T>(Option<T> option)
    {
        if (typeof(T) == typeof(int))
        {
            Parse((Option<int>)(object)option, "a whole number", static (string s, out int v) => int.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v));
        }
        else if (typeof(T) == typeof(long))
        {
            Parse((Option<long>)(object)option, "a whole number", static (string s, out long v) => long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v));
        }
    }

    private static void Parse<T>(Option<T> option, string expected, TryParse<T> tryParse) => option.CustomParser = result =>
    {
        if (result.Tokens.Count == 0)
        {
            return option.DefaultValueFactory is { } fallback ? fallback(result) : default!;
        }

        var token = result.Tokens[^1].Value;
        if (tryParse(token, out var value))
        {
            return value;
        }

        result.AddError($"{option.Name} takes {expected}; got '{token}'.");
        return default!;
    };

    private delegate bool TryParse<T>(string text, out T value);

    // A string option, not a bool one: System.CommandLine gives a bool option only the tokens that read as a bool, so
    // "--channel yes" would be reported as a stray "yes" rather than as a bad value of --channel.
    private void AddBool(string flag, string description, string property, bool defaultValue, Action<WorkerOptions, bool> apply)
    {
        var option = new Option<string>(flag)
        {
            HelpName = "true|false",
            Description = description,
            DefaultValueFactory = _ => defaultValue ? "true" : "false",
            Arity = ArgumentArity.ExactlyOne,
        };
        option.Validators.Add(result =>
        {
            if (result.Tokens.Count > 0 && !bool.TryParse(result.Tokens[^1].Value, out _))
            {
                result.AddError($"{flag} takes true or false; got '{result.Tokens[^1].Value}'.");
            }
        });
        Add(option, property, (o, v) => apply(o, bool.Parse(v)));
    }

    // Whole milliseconds as an int: the longest time the worker accepts is int.MaxValue ms, so no value that parses can overflow.
    private void AddMilliseconds(string flag, string description, string property, TimeSpan defaultValue, Action<WorkerOptions, TimeSpan> apply) =>
        Add(new Option<int>(flag) { HelpName = "ms", Description = description + " In milliseconds.", DefaultValueFactory = _ => (int)defaultValue.TotalMilliseconds },
            property, (o, v) => apply(o, TimeSpan.FromMilliseconds(v)));

    private void AddInt(string flag, string helpName, string description, string property, int defaultValue, Action<WorkerOptions, int> apply) =>
        Add(new Option<int>(flag) { HelpName = helpName, Description = description, DefaultValueFactory = _ => defaultValue }, property, apply);
}
