using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// The channel's server side (protos/CHANNEL.md): listens on TCP and/or a Unix domain socket with raw sockets,
/// runs one <see cref="ChannelServerConnection"/> per accepted socket, and hands requests to the handler.
/// </summary>
internal sealed class ChannelListener : IAsyncDisposable
{
    private readonly ChannelListenerOptions _options;
    private readonly IChannelHandler _handler;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<long, (ChannelServerConnection Connection, Task Run)> _connections = new();
    private readonly List<(Socket Socket, Task Accept)> _listeners = [];
    private long _nextConnectionId;
    private int _stopped;

    public ChannelListener(ChannelListenerOptions options, IChannelHandler handler, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(handler);
        _options = options.Snapshot();
        _handler = handler;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The bound TCP end point (with the actual port when port 0 was asked), after <see cref="Start"/>.</summary>
    public IPEndPoint? TcpEndPoint { get; private set; }

    /// <summary>The Unix domain socket path, after <see cref="Start"/>.</summary>
    public string? UnixSocketPath { get; private set; }

    /// <summary>Connections open now.</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>Binds and starts accepting.</summary>
    /// <exception cref="IOException">The Unix socket path is in use by a live listener.</exception>
    /// <exception cref="SocketException">A bind failed (address in use, no permission).</exception>
    public void Start()
    {
        try
        {
            if (_options.TcpEndPoint is { } tcp)
            {
                var socket = new Socket(tcp.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
                _listeners.Add((socket, Task.CompletedTask));
                Bind(socket, tcp, $"TCP {tcp}");
                socket.Listen(_options.Backlog);
                TcpEndPoint = (IPEndPoint)socket.LocalEndPoint!;
                _listeners[^1] = (socket, AcceptLoopAsync(socket, $"tcp://{TcpEndPoint}"));
                ChannelLog.Listening(_logger, $"tcp://{TcpEndPoint}");
            }

            if (!string.IsNullOrEmpty(_options.UnixSocketPath))
            {
                var path = Path.GetFullPath(_options.UnixSocketPath);
                RemoveStaleSocket(path);
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                _listeners.Add((socket, Task.CompletedTask));
                Bind(socket, new UnixDomainSocketEndPoint(path), $"the Unix socket {path}");
                UnixSocketPath = path;

                // Before Listen, so no other user can connect in between.
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }

                socket.Listen(_options.Backlog);
                _listeners[^1] = (socket, AcceptLoopAsync(socket, $"unix:{path}"));
                ChannelLog.Listening(_logger, $"unix:{path}");
            }
        }
        catch
        {
            // Accept loops already running end quietly: a failed start is not an accept failure.
            _stop.Cancel();
            foreach (var (socket, _) in _listeners)
            {
                socket.Dispose();
            }

            DeleteOwnSocketFile();
            throw;
        }
    }

    /// <summary>Binds, naming what could not be bound: the socket's own message does not say which of the two failed.</summary>
    private static void Bind(Socket socket, EndPoint endPoint, string what)
    {
        try
        {
            socket.Bind(endPoint);
        }
        catch (SocketException ex)
        {
            throw new IOException($"binding {what} failed: {ex.Message.TrimEnd('.')}", ex);
        }
    }

    /// <summary>Stops accepting, closes every connection (their pending requests end), removes the socket file.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var (socket, _) in _listeners)
        {
            socket.Dispose();
        }

        // Accept loops first, so no connection joins the table after the snapshot below.
        await Task.WhenAll(_listeners.Select(l => l.Accept)).ConfigureAwait(false);
        var open = _connections.Values.ToArray();
        foreach (var (connection, _) in open)
        {
            connection.Abort();
        }

        await Task.WhenAll(open.Select(c => c.Run)).ConfigureAwait(false);
        DeleteOwnSocketFile();
        _stop.Dispose();
    }

    public async ValueTask DisposeAsync() => await StopAsync().ConfigureAwait(false);

    private async Task AcceptLoopAsync(Socket listener, string endPoint)
    {
        await Task.Yield();
        var unix = listener.AddressFamily == AddressFamily.Unix;
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionAborted or SocketError.ConnectionReset)
            {
                // The peer gave up while waiting in the backlog.
                continue;
            }
            catch (Exception ex)
            {
                ChannelLog.AcceptFailed(_logger, endPoint, ex);
                return;
            }

            if (!unix)
            {
                socket.NoDelay = true;

                // Idle connections have no frame timeout; keep-alive finds the peers that vanished.
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            }

            var id = Interlocked.Increment(ref _nextConnectionId);
            var remote = unix ? endPoint : socket.RemoteEndPoint?.ToString() ?? "?";
            var connection = new ChannelServerConnection(socket, new ChannelConnectionState(id, remote), _options, _handler, _logger, _stop.Token);
            var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var run = RunConnectionAsync(id, connection, started.Task);
            _connections[id] = (connection, run);
            started.SetResult();
            if (_stop.IsCancellationRequested)
            {
                connection.Abort();
            }
        }
    }

    private async Task RunConnectionAsync(long id, ChannelServerConnection connection, Task registered)
    {
        // Runs after the connection is in the table, so its removal below never comes first.
        await registered.ConfigureAwait(false);
        try
        {
            // A thread of its own, blocked in the socket while the connection is idle (see ChannelServerConnection).
            var ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var thread = new Thread(() =>
            {
                try
                {
                    connection.Run();
                }
                finally
                {
                    ended.SetResult();
                }
            })
            {
                IsBackground = true,
                Name = $"raysharing-channel-{id}",
            };
            thread.Start();
            await ended.Task.ConfigureAwait(false);
        }
        finally
        {
            _connections.TryRemove(id, out _);
        }
    }

    private void RemoveStaleSocket(string path)
    {
        if (!File.Exists(path))
        {
            return;
        }

        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            try
            {
                probe.Connect(new UnixDomainSocketEndPoint(path));
                throw new IOException($"The channel socket {path} is in use by a running listener; give this worker another {nameof(ChannelListenerOptions.UnixSocketPath)}.");
            }
            catch (SocketException ex) when (ex.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
            {
                // Nobody listens: a file left by a listener that died.
            }
        }

        File.Delete(path);
        ChannelLog.StaleSocketRemoved(_logger, path);
    }

    private void DeleteOwnSocketFile()
    {
        if (UnixSocketPath is { } path)
        {
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
        }
    }
}
