using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace RaySharing.Testing;

/// <summary>
/// A child OS process (a peer, the worker host, the sample, a role of the chaos harness) whose stdout is
/// captured line by line and whose stderr is kept for diagnostics. Every child is remembered until it is
/// disposed, so <see cref="KillAll"/> can make sure none outlives its parent, whatever path it exits by.
/// </summary>
public sealed class ChildProcess : IDisposable
{
    private static readonly ConcurrentDictionary<ChildProcess, byte> Live = new();
    private static PosixSignalRegistration[] s_signals = [];
    private static int s_shuttingDown;

    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly StringBuilder _stderr = new();
    private readonly SemaphoreSlim _lineArrived = new(0);
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _killed;

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Id => _process.Id;

    /// <summary>True once <see cref="Kill"/> was called on it.</summary>
    public bool WasKilled => Volatile.Read(ref _killed) != 0;

    public bool HasExited
    {
        get
        {
            try
            {
                return _process.HasExited;
            }
            catch (InvalidOperationException)
            {
                return true;
            }
        }
    }

    /// <summary>The stdout lines so far.</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>The stdout so far, one line per line.</summary>
    public string StandardOutput => string.Join('\n', Lines);

    /// <summary>The last stderr lines, for a problem report.</summary>
    public string StderrTail
    {
        get
        {
            lock (_stderr)
            {
                var text = _stderr.ToString().Trim();
                return text.Length <= 600 ? text : "…" + text[^600..];
            }
        }
    }

    /// <summary>Starts this same program in another role.</summary>
    public static ChildProcess StartSelf(string name, params string[] arguments)
    {
        var processPath = Environment.ProcessPath ?? throw new InvalidOperationException("The path of this process is unknown; cannot start children.");
        var start = new ProcessStartInfo(processPath);
        // Run as `dotnet RaySharing.Chaos.dll`, this process is the dotnet host: the child needs the dll too.
        if (Path.GetFileNameWithoutExtension(processPath) == "dotnet")
        {
            start.ArgumentList.Add(Assembly.GetEntryAssembly()?.Location
                ?? throw new InvalidOperationException("The entry assembly is unknown; cannot start children."));
        }

        return Start(name, start, arguments);
    }

    /// <summary>Starts an executable by its path, such as an installed .NET tool.</summary>
    public static ChildProcess StartProgram(string name, string fileName, params string[] arguments) =>
        Start(name, new ProcessStartInfo(fileName), arguments);

    /// <summary>Starts an executable by its path with <paramref name="environment"/> added to this process's variables.</summary>
    public static ChildProcess StartProgram(string name, string fileName, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName);
        foreach (var (variable, value) in environment)
        {
            start.Environment[variable] = value;
        }

        return Start(name, start, arguments);
    }

    /// <summary>Starts <c>dotnet assembly.dll arguments</c>.</summary>
    public static ChildProcess StartAssembly(string name, string assemblyPath, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet");
        start.ArgumentList.Add(assemblyPath);
        return Start(name, start, arguments);
    }

    /// <summary>
    /// Makes sure no child outlives this process, however it ends: a return or an exception
    /// (ProcessExit), SIGTERM, Ctrl+C or SIGQUIT. The children also exit when their stdin closes, but the
    /// worker host does not read stdin, so it must be killed.
    /// </summary>
    public static void KillAllOnExit()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        // Kept in a static field: a registration that is garbage-collected stops handling its signal.
        // The handlers do not cancel the signal, so it then ends the process as it would have.
        s_signals = [.. new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT }.Select(signal => PosixSignalRegistration.Create(signal, _ => KillAll()))];
    }

    /// <summary>
    /// SIGKILLs every child still running, and every child started from now on: the harness is going
    /// away, and a round still running must not start a worker that outlives it. Safe to call from any
    /// thread, any number of times.
    /// </summary>
    public static void KillAll()
    {
        Volatile.Write(ref s_shuttingDown, 1);
        foreach (var child in Live.Keys)
        {
            child.Kill();
        }
    }

    /// <summary>True when some stdout line starts with <paramref name="prefix"/>.</summary>
    public bool HasLine(string prefix)
    {
        lock (_lines)
        {
            return _lines.Exists(l => l.StartsWith(prefix, StringComparison.Ordinal));
        }
    }

    /// <summary>Waits for a stdout line starting with <paramref name="prefix"/> and returns it.</summary>
    /// <exception cref="ChildFailedException">The child closed its output without printing one, or did not print one in time.</exception>
    public async Task<string> WaitForLineAsync(string prefix, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var deadline = Stopwatch.StartNew();
        var seen = 0;
        while (true)
        {
            lock (_lines)
            {
                for (; seen < _lines.Count; seen++)
                {
                    if (_lines[seen].StartsWith(prefix, StringComparison.Ordinal))
                    {
                        return _lines[seen];
                    }
                }
            }

            if (_stdoutClosed.Task.IsCompleted)
            {
                throw new ChildFailedException($"{Name} ended without printing {prefix}: {Describe()}");
            }

            var left = timeout - deadline.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                throw new ChildFailedException($"{Name} printed no {prefix} within {timeout.TotalSeconds:0.#} s: {Describe()}");
            }

            // Woken by every new line; the short cap notices a closed stdout without a separate signal.
            await _lineArrived.WaitAsync(TimeSpan.FromMilliseconds(Math.Min(100, left.TotalMilliseconds)), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits for the child to exit and its output to be read; false when it is still running after <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(timeout);
        try
        {
            await _process.WaitForExitAsync(bound.Token).ConfigureAwait(false);
            await _stdoutClosed.Task.WaitAsync(bound.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Waits for the child to exit and returns its exit code.</summary>
    /// <exception cref="ChildFailedException">It is still running after <paramref name="timeout"/>.</exception>
    public async Task<int> WaitForExitCodeAsync(TimeSpan timeout, CancellationToken cancellationToken = default) =>
        await WaitForExitAsync(timeout, cancellationToken).ConfigureAwait(false)
            ? _process.ExitCode
            : throw new ChildFailedException($"{Name} did not exit within {timeout.TotalSeconds:0.#} s: {Describe()}");

    /// <summary>SIGKILL, with its whole process tree: it gets no chance to close its session.</summary>
    public void Kill()
    {
        Interlocked.Exchange(ref _killed, 1);
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // It exited between the check and the kill.
        }
    }

    /// <summary>Kills the child if it still runs and forgets it.</summary>
    public void Dispose()
    {
        if (!HasExited)
        {
            Kill();
        }

        Live.TryRemove(this, out _);
        _process.Dispose();
    }

    /// <summary>What the child did, for a problem report.</summary>
    public string Describe()
    {
        var state = HasExited ? $"exited {SafeExitCode()}" : "running";
        var lines = Lines;
        var last = lines.Count == 0 ? "(no output)" : string.Join(" | ", lines.TakeLast(3));
        var stderr = StderrTail;
        return $"{state}; stdout: {last}{(stderr.Length == 0 ? string.Empty : $"; stderr: {stderr}")}";
    }

    private static ChildProcess Start(string name, ProcessStartInfo start, string[] arguments)
    {
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        // Children may watch their stdin: it closes when the parent dies, however it dies, so they can exit.
        start.RedirectStandardInput = true;
        var process = new Process { StartInfo = start };
        var child = new ChildProcess(name, process);
        process.OutputDataReceived += (_, e) => child.OnStdout(e.Data);
        process.ErrorDataReceived += (_, e) => child.OnStderr(e.Data);
        if (Volatile.Read(ref s_shuttingDown) != 0 || !process.Start())
        {
            throw new InvalidOperationException($"Could not start {name} ({start.FileName}){(Volatile.Read(ref s_shuttingDown) != 0 ? ": the harness is shutting down" : string.Empty)}.");
        }

        Live.TryAdd(child, 0);
        if (Volatile.Read(ref s_shuttingDown) != 0)
        {
            // KillAll ran between the check and the registration.
            child.Kill();
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    private string SafeExitCode()
    {
        try
        {
            return WasKilled ? "(killed)" : _process.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    private void OnStdout(string? line)
    {
        if (line is null)
        {
            _stdoutClosed.TrySetResult();
        }
        else
        {
            lock (_lines)
            {
                _lines.Add(line);
            }
        }

        _lineArrived.Release();
    }

    private void OnStderr(string? line)
    {
        if (line is not null)
        {
            lock (_stderr)
            {
                // The worker logs every session; keep only a bounded tail.
                if (_stderr.Length > 64 << 10)
                {
                    _stderr.Remove(0, 32 << 10);
                }

                _stderr.AppendLine(line);
            }
        }
    }
}

/// <summary>A child process did not do what its role promises (print a line, exit in time).</summary>
public sealed class ChildFailedException(string message) : Exception(message);
