using System.Net;
using System.Net.Sockets;

namespace RaySharing.Tests.Infrastructure;

/// <summary>
/// A TCP proxy in front of a worker that can stop forwarding in one direction after a number of bytes,
/// keeping the connections open: to the client, a worker that stopped answering mid-transfer.
/// </summary>
internal sealed class FreezableProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Socket> _sockets = [];
    private long _toClientBudget = long.MaxValue;
    private long _toWorkerBudget = long.MaxValue;

    public FreezableProxy(string workerAddress)
    {
        var uri = new Uri(workerAddress);
        _target = new IPEndPoint(IPAddress.Parse(uri.Host), uri.Port);
        _listener.Start();
        _ = AcceptLoopAsync();
    }

    public string Address => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>Forward at most <paramref name="bytes"/> more from the worker to the client, then nothing.</summary>
    public void FreezeToClientAfter(long bytes) => Interlocked.Exchange(ref _toClientBudget, bytes);

    /// <summary>Forward at most <paramref name="bytes"/> more from the client to the worker, then nothing.</summary>
    public void FreezeToWorkerAfter(long bytes) => Interlocked.Exchange(ref _toWorkerBudget, bytes);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().Within();
        _listener.Stop();
        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
        }

        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_stop.Token);
                var worker = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await worker.ConnectAsync(_target, _stop.Token);
                lock (_sockets)
                {
                    _sockets.Add(client);
                    _sockets.Add(worker);
                }

                _ = PumpAsync(worker, client, toClient: true);
                _ = PumpAsync(client, worker, toClient: false);
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private async Task PumpAsync(Socket from, Socket to, bool toClient)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var read = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                if (read == 0)
                {
                    to.Shutdown(SocketShutdown.Send);
                    return;
                }

                ref var budget = ref toClient ? ref _toClientBudget : ref _toWorkerBudget;
                var allowed = (int)Math.Min(read, Math.Max(0, Interlocked.Read(ref budget)));
                Interlocked.Add(ref budget, -allowed);
                if (allowed > 0)
                {
                    await to.SendAsync(buffer.AsMemory(0, allowed), SocketFlags.None, _stop.Token);
                }

                if (allowed < read)
                {
                    // Frozen: hold both sockets open and forward nothing more, like a hung process.
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                }
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
        catch (SocketException)
        {
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
