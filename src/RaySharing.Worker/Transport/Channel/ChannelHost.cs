using System.Globalization;
using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using RaySharing.Wire.Channel;

namespace RaySharing.Worker.Transport.Channel;

/// <summary>
/// Runs the worker's channel listener (<see cref="WorkerOptions.Channel"/>) for the life of the host: TCP on the
/// worker's listen address and <see cref="WorkerOptions.ChannelPort"/>, and a Unix domain socket in
/// <see cref="WorkerOptions.ChannelSocketDirectory"/>. Sessions learn where it is from <see cref="Offer"/>.
/// </summary>
internal sealed class ChannelHost(WorkerOptions options, ObjectChannelHandler handler, ILogger<ChannelHost> logger) : IHostedService, IAsyncDisposable
{
    private const string SocketPrefix = "raysharing-";
    private const string SocketSuffix = ".sock";
    private ChannelListener? _listener;

    /// <summary>The bound TCP port, once started; 0 when the channel is off.</summary>
    public int TcpPort => _listener?.TcpEndPoint?.Port ?? 0;

    /// <summary>The Unix domain socket, once started; null when there is none.</summary>
    public string? UnixSocketPath => _listener?.UnixSocketPath;

    /// <summary>The largest frame payload the listener accepts.</summary>
    public int MaxPayloadBytes => ChannelFrameHeader.DefaultMaxPayloadBytes;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.Channel)
        {
            return Task.CompletedTask;
        }

        string? socketPath = null;
        if (options.ChannelSocketDirectory.Length > 0)
        {
            RemoveSocketsOfDeadWorkers(options.ChannelSocketDirectory);
            // The process id names the owner for the clean-up above; the random part keeps several workers of one
            // process (tests, an application embedding two) apart.
            socketPath = Path.Combine(options.ChannelSocketDirectory, $"{SocketPrefix}{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}{SocketSuffix}");
        }

        var listener = new ChannelListener(
            new ChannelListenerOptions
            {
                TcpEndPoint = new IPEndPoint(IPAddress.Parse(options.ListenAddress), options.ChannelPort),
                UnixSocketPath = socketPath,
                FrameTimeout = options.StreamIdleTimeout,
            },
            handler,
            logger);
        try
        {
            listener.Start();
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or IOException or UnauthorizedAccessException)
        {
            throw new ChannelListenException(
                $"The channel cannot listen on {options.ListenAddress}:{options.ChannelPort}{(socketPath is null ? string.Empty : $" and {socketPath}")}: {ex.Message.TrimEnd('.')}. "
                + $"Pick a free {nameof(WorkerOptions.ChannelPort)} (0 picks one) and a writable {nameof(WorkerOptions.ChannelSocketDirectory)}, or turn the channel off ({nameof(WorkerOptions.Channel)} = false).",
                ex);
        }

        _listener = listener;
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_listener is { } listener)
        {
            await listener.StopAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);

    /// <summary>Where a session finds the channel, and the key its HELLO presents; null when the channel is off.</summary>
    public Protocol.V1.ChannelOffer? Offer(string workerAddress, byte[] channelKey)
    {
        if (_listener is null)
        {
            return null;
        }

        return new Protocol.V1.ChannelOffer
        {
            Host = Uri.TryCreate(workerAddress, UriKind.Absolute, out var uri) ? uri.Host : options.ListenAddress,
            Port = (uint)TcpPort,
            UnixSocketPath = UnixSocketPath ?? string.Empty,
            Key = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(channelKey),
            MaxPayloadBytes = (uint)MaxPayloadBytes,
        };
    }

    /// <summary>A worker killed with SIGKILL leaves its socket file: such files whose process is gone are removed.</summary>
    private void RemoveSocketsOfDeadWorkers(string directory)
    {
        IEnumerable<string> files;
        try
        {
            files = Directory.EnumerateFiles(directory, $"{SocketPrefix}*{SocketSuffix}");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return;
        }

        foreach (var file in files)
        {
            var name = Path.GetFileName(file);
            var owner = name[SocketPrefix.Length..^SocketSuffix.Length];
            var pidText = owner.Contains('-', StringComparison.Ordinal) ? owner[..owner.IndexOf('-', StringComparison.Ordinal)] : owner;
            if (!int.TryParse(pidText, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == Environment.ProcessId || IsRunning(pid))
            {
                continue;
            }

            try
            {
                File.Delete(file);
                ChannelLog.StaleSocketRemoved(logger, file);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Another user's file, or gone already: not ours to clean.
            }
        }
    }

    private static bool IsRunning(int pid) => !OperatingSystem.IsLinux() || Directory.Exists($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}");
}

/// <summary>The channel's listener could not bind its TCP port or its Unix socket: the worker does not start.</summary>
internal sealed class ChannelListenException(string message, Exception inner) : IOException(message, inner);
