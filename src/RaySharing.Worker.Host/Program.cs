using System.CommandLine.Help;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using RaySharing.Worker;
using RaySharing.Worker.Host;

// The worker as a process (the raysharing-worker tool). Run with --help for the options and exit codes.
// It prints "listening <address>" on stdout once ready, so a parent process can wait for that line; logs go to stderr.
const int Stopped = 0, Failed = 1, BadArguments = 2, CannotListen = 3, LeftCluster = 4, CannotReachDirectory = 5;

var commandLine = new WorkerCommandLine();
var parsed = commandLine.Parse(args);
// With no parse error the only actions are --help and --version (the command itself has none); help wins over errors.
if (parsed.Action is HelpAction || (parsed.Errors.Count == 0 && parsed.Action is not null))
{
    return parsed.Invoke();
}

if (parsed.Errors.Count > 0)
{
    return Fail(BadArguments, string.Join(" ", parsed.Errors.Select(e => OneLine(e.Message))) + " Run with --help for the options.");
}

if (commandLine.ClusterFlagWithoutRedis(parsed) is { } clusterFlag)
{
    return Fail(BadArguments, $"{clusterFlag} takes effect only with --redis (the cluster's directory): give --redis host:port to join a cluster, or leave {clusterFlag} out for a single worker.");
}

var options = commandLine.ToOptions(parsed);
if (WorkerOptionsValidator.Failures(options).FirstOrDefault() is { Option: not null } failure)
{
    return Fail(BadArguments, $"{commandLine.FlagOf(failure.Option)}: {failure.Message}");
}

// Listening before the worker starts, so a signal at any moment from here on stops it gracefully.
var stopRequested = ShutdownSignal.Listen();
var logLevel = parsed.GetValue(commandLine.LogLevelOption);
RaySharingWorker worker;
try
{
    worker = await RaySharingWorker.StartAsync(options, logging => logging
        .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace)
        .AddSimpleConsole(console => console.SingleLine = true)
        .AddFilter(HostStartFailureCategory, level => level >= logLevel && (level < LogLevel.Error || Volatile.Read(ref s_started)))
        .SetMinimumLevel(logLevel));
}
catch (RaySharing.Worker.Transport.Channel.ChannelListenException ex)
{
    return Fail(CannotListen, $"cannot serve the channel: {ex.InnerException?.Message.TrimEnd('.')}. Pick a free --channel-port (0 picks one), a writable --channel-socket-dir, or --channel false.");
}
catch (RaySharing.Worker.Cluster.ClusterDirectoryException ex)
{
    return Fail(CannotReachDirectory, $"cannot join cluster '{options.ClusterName}': {ex.Message.TrimEnd('.')}. Check --redis.");
}
catch (Exception ex) when (ex is SocketException || ex.InnerException is AddressInUseException)
{
    // Kestrel throws SocketException (address not on this machine, no permission) or an IOException around AddressInUseException.
    return Fail(CannotListen, $"cannot listen on {options.ListenAddress}:{options.Port}: {ex.GetBaseException().Message.TrimEnd('.')}. Pick a free --port, or an address of this machine with --listen.");
}
catch (ArgumentException ex) when (ex.ParamName is nameof(WorkerOptions.StoreCapacityBytes) or nameof(WorkerOptions.SpillDirectory))
{
    // A capacity the machine cannot map (more than its address space or its overcommit allows), or a spill
    // directory that cannot be written: the user's to change.
    return Fail(BadArguments, $"{commandLine.FlagOf(ex.ParamName)}: {ex.Message.Replace($" (Parameter '{ex.ParamName}')", string.Empty, StringComparison.Ordinal)}");
}
catch (Exception ex)
{
    // Not the user's doing: the whole exception, for a bug report.
    return Fail(Failed, $"the worker failed to start: {ex}");
}

Volatile.Write(ref s_started, true);
Console.Out.WriteLine($"listening {worker.Address}");
Console.Out.Flush();
if (await Task.WhenAny(stopRequested, worker.Completion) != stopRequested)
{
    // The worker stopped by itself: it lost its registration in the cluster's directory (logged as critical).
    await worker.DisposeAsync();
    return Fail(LeftCluster, $"the worker could not renew its registration in cluster '{options.ClusterName}' within its lease of {options.ClusterLease.TotalMilliseconds:0} ms (the directory at {RaySharing.Worker.Cluster.RedisDirectory.Describe(options.Redis!)} did not answer in time, or this process was stalled), so the cluster counts it dead; it stopped and its holders died. Start it again: it joins as a new worker.");
}

// Every session ends and every object is freed; more signals meanwhile change nothing.
try
{
    await worker.DisposeAsync();
}
catch (Exception ex)
{
    return Fail(Failed, $"the worker failed to stop cleanly: {ex}");
}

return Stopped;

// A parse error may list suggestions one per line; the host's errors are one line each.
static string OneLine(string message)
{
    var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    return lines.Length <= 1 ? message.Trim() : $"{lines[0]} {string.Join(", ", lines[1..])}";
}

static int Fail(int exitCode, string message)
{
    Console.Error.WriteLine($"{WorkerCommandLine.Name}: {message}");
    return exitCode;
}

internal static partial class Program
{
    // The generic host logs a failed start with its stack trace before rethrowing; until the worker has started,
    // the host reports that itself in one line. Its errors afterwards are logged as usual.
    private const string HostStartFailureCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    private static bool s_started;
}
