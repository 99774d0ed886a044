using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using RaySharing.Internal;
using RaySharing.Internal.Channel;
using RaySharing.Wire.Channel;
using RaySharing.Protocol.V1;
using RaySharing.Wire;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// Another worker of the cluster as this worker reaches it: one gRPC channel and one session of this worker's
/// there (a peer session, client name <c>peer &lt;worker id&gt;</c>), kept alive in the background. Calls this worker
/// forwards for its own sessions go through it, so what they borrow on the other worker belongs to the peer
/// session: released when the local session releases or ends, and dropped by the other worker when this one dies
/// (its cluster record lapses, or the peer session's lease does).
/// </summary>
internal sealed class PeerWorker : IAsyncDisposable
{
    /// <summary>The lease asked for: long, since a dead peer is noticed through the directory, a lease sooner.</summary>
    private static readonly TimeSpan RequestedLease = TimeSpan.FromMinutes(2);

    private readonly GrpcChannel _channel;
    private readonly Sessions.SessionsClient _sessions;
    private readonly ILogger _logger;
    private readonly TimeSpan _callTimeout;
    private readonly CancellationTokenSource _closing = new();
    private readonly SemaphoreSlim _opening = new(1, 1);
    private Metadata? _headers;
    private byte[]? _hello;
    private Task? _keepAlive;

    private readonly DeadlineBuckets _deadlines;

    // The other worker's binary channel, for the forwarded calls it carries (register, fetch): one multiplexed
    // connection bound to the peer session by its HELLO, replaced when it breaks or the session changes.
    private readonly ChannelEndpoint? _channelEndpoint;
    private readonly SemaphoreSlim _connecting = new(1, 1);
    private ChannelConnection? _calls;
    private Metadata? _callsSession;

    public PeerWorker(WorkerRecord record, string localWorker, TimeSpan callTimeout, DeadlineBuckets deadlines, ILogger logger)
    {
        _deadlines = deadlines;
        _channelEndpoint = record.ChannelPort > 0 ? ChannelEndpoint.Tcp(new Uri(record.Address).Host, record.ChannelPort) : null;
        Record = record;
        LocalWorker = localWorker;
        _callTimeout = callTimeout;
        _logger = logger;
        _channel = GrpcChannel.ForAddress(record.Address, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = 64 << 20,
            MaxSendMessageSize = 64 << 20,
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                ConnectTimeout = callTimeout,
                KeepAlivePingDelay = TimeSpan.FromSeconds(10),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            },
        });
        _sessions = new Sessions.SessionsClient(_channel);
        Holders = new Holders.HoldersClient(_channel);
        Objects = new Objects.ObjectsClient(_channel);
        Peers = new Peers.PeersClient(_channel);
    }

    public WorkerRecord Record { get; }

    public string LocalWorker { get; }

    public Holders.HoldersClient Holders { get; }

    public Objects.ObjectsClient Objects { get; }

    /// <summary>The calls between workers only (peers.proto).</summary>
    public Peers.PeersClient Peers { get; }

    /// <summary>
    /// Options of one call through the peer session: its token and the caller's cancellation, with no deadline (a
    /// relayed stream has none); <see cref="CallAsync{T}"/> bounds a unary call.
    /// </summary>
    public async Task<CallOptions> OptionsAsync(CancellationToken cancellationToken) =>
        new(await HeadersAsync(cancellationToken).ConfigureAwait(false), cancellationToken: cancellationToken);

    /// <summary>
    /// One call through the peer session. Its own errors come back as they are (an <see cref="RpcException"/> with
    /// the other worker's reason and trailers); a peer session that lapsed there is opened again once.
    /// </summary>
    /// <exception cref="PeerUnreachableException">The other worker did not answer (connection refused or lost, or no answer within the deadline).</exception>
    public async Task<T> CallAsync<T>(Func<CallOptions, AsyncUnaryCall<T>> call, CancellationToken cancellationToken)
    {
        // Bounded by a shared deadline slot rather than a gRPC deadline: that would cost a timer per call on both workers.
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadlines.TokenFor(_callTimeout));
        for (var attempt = 1; ; attempt++)
        {
            CallOptions options;
            try
            {
                options = await OptionsAsync(bounded.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RpcException or OperationCanceledException && !cancellationToken.IsCancellationRequested && IsTransport(ex, bounded))
            {
                throw Unreachable(ex, bounded);
            }

            try
            {
                return await call(options).ConfigureAwait(false);
            }
            catch (RpcException ex) when (ex.Trailers.GetValue(WireHeaders.Reason) == ErrorReasons.SessionExpired && attempt == 1)
            {
                // The peer session lapsed there (this worker stalled); what it borrowed is gone. A new one for this call.
                SessionLost(options.Headers!);
            }
            catch (RpcException ex) when (IsTransport(ex, cancellationToken))
            {
                throw Unreachable(ex, bounded);
            }
        }
    }

    /// <summary>
    /// One call through the peer session on the other worker's binary channel, bounded as <see cref="CallAsync{T}"/> is;
    /// null when that worker offers no channel (the caller goes over gRPC). <paramref name="read"/> turns the ok reply's
    /// payload into the reply, before the reply's buffer goes back. A failed reply is thrown as the <see cref="RpcException"/>
    /// the gRPC call would have thrown (its reason and detail as trailers), so callers handle both transports alike.
    /// </summary>
    /// <exception cref="PeerUnreachableException">The other worker did not answer.</exception>
    public async Task<T?> ChannelCallAsync<T>(ChannelOp op, ReadOnlyMemory<byte> payload, Func<ReadOnlyMemory<byte>, T> read, CancellationToken cancellationToken)
        where T : class
    {
        if (_channelEndpoint is null || payload.Length > ChannelFrameHeader.DefaultMaxPayloadBytes - (64 << 10))
        {
            return null;
        }

        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadlines.TokenFor(_callTimeout));
        for (var attempt = 1; ; attempt++)
        {
            Metadata? session = null;
            try
            {
                session = await HeadersAsync(bounded.Token).ConfigureAwait(false);
                if (Volatile.Read(ref _hello) is not { } hello)
                {
                    return null;
                }

                var calls = await CallsAsync(session, hello, bounded.Token).ConfigureAwait(false);
                using var reply = await calls.SendAsync(op, payload, bounded.Token).ConfigureAwait(false);
                return reply.IsOk ? read(reply.Payload) : throw ErrorOf(reply.ReadError());
            }
            catch (RpcException ex) when (ex.Trailers.GetValue(WireHeaders.Reason) == ErrorReasons.SessionExpired && attempt == 1 && session is not null)
            {
                // The peer session lapsed there: a new one, and a channel connection bound to it, for this call.
                SessionLost(session);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested
                && (ex is ChannelUnavailableException or ChannelProtocolException or OperationCanceledException || (ex is RpcException rpc && IsTransport(rpc, cancellationToken))))
            {
                throw Unreachable(ex is RpcException ? ex : new RpcException(new Status(StatusCode.Unavailable, ex.Message)), bounded);
            }
        }
    }

    /// <summary>The channel connection bound to <paramref name="session"/>, connected and proven with its HELLO if need be.</summary>
    private async Task<ChannelConnection> CallsAsync(Metadata session, byte[] hello, CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _calls) is { IsBroken: false } live && ReferenceEquals(Volatile.Read(ref _callsSession), session))
        {
            return live;
        }

        await _connecting.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_calls is { IsBroken: false } current && ReferenceEquals(_callsSession, session))
            {
                return current;
            }

            if (_calls is { } old)
            {
                _calls = null;
                await old.DisposeAsync().ConfigureAwait(false);
            }

            var connection = await ChannelConnection.ConnectAsync(_channelEndpoint!, ChannelFrameHeader.DefaultMaxPayloadBytes, cancellationToken).ConfigureAwait(false);
            try
            {
                using var reply = await connection.SendAsync(ChannelOp.Hello, hello, cancellationToken).ConfigureAwait(false);
                if (!reply.IsOk)
                {
                    throw ErrorOf(reply.ReadError());
                }
            }
            catch
            {
                await connection.DisposeAsync().ConfigureAwait(false);
                throw;
            }

            _callsSession = session;
            Volatile.Write(ref _calls, connection);
            return connection;
        }
        finally
        {
            _connecting.Release();
        }
    }

    /// <summary>A failed channel reply as the gRPC call's error: the status of ERRORS.md's table, the reason and detail as trailers.</summary>
    private static RpcException ErrorOf(ChannelError error)
    {
        var trailers = new Metadata { { WireHeaders.Reason, error.Reason } };
        foreach (var (key, value) in error.Detail ?? new Dictionary<string, string>())
        {
            // Names and addresses travel percent-encoded in trailers, as the worker's own errors send them.
            trailers.Add(key, key is WireHeaders.HolderNamespace or WireHeaders.HolderName or WireHeaders.WorkerAddress ? Uri.EscapeDataString(value) : value);
        }

        return new RpcException(new Status(StatusOf(error.Reason), error.Message), trailers);
    }

    private static StatusCode StatusOf(string reason) => reason switch
    {
        ErrorReasons.OwnerDied or ErrorReasons.SessionExpired or ErrorReasons.WrongWorker => StatusCode.FailedPrecondition,
        ErrorReasons.ObjectFreed or ErrorReasons.ObjectNotFound or ErrorReasons.HolderNotFound or ErrorReasons.KeyNotFound => StatusCode.NotFound,
        ErrorReasons.ObjectLost or ErrorReasons.ChecksumMismatch => StatusCode.DataLoss,
        ErrorReasons.StoreFull or ErrorReasons.ObjectTooLarge or ErrorReasons.MessageTooLarge => StatusCode.ResourceExhausted,
        ErrorReasons.InvalidEnvelope or ErrorReasons.NotOwner or ErrorReasons.InvalidRequest => StatusCode.InvalidArgument,
        ErrorReasons.Timeout => StatusCode.DeadlineExceeded,
        ErrorReasons.Unavailable => StatusCode.Unavailable,
        ErrorReasons.ListChanged => StatusCode.Aborted,
        ErrorReasons.Unimplemented => StatusCode.Unimplemented,
        ErrorReasons.Unauthorized => StatusCode.PermissionDenied,
        ErrorReasons.ProtocolError => StatusCode.Internal,
        _ => StatusCode.Unknown,
    };

    private static bool IsTransport(Exception ex, CancellationTokenSource bounded) =>
        ex is OperationCanceledException ? bounded.IsCancellationRequested : IsTransport((RpcException)ex, CancellationToken.None);

    /// <summary>The other worker did not answer: the transport's failure, or no answer within the call's bound.</summary>
    private PeerUnreachableException Unreachable(Exception ex, CancellationTokenSource bounded) =>
        new(Record, bounded.IsCancellationRequested || ex is not RpcException
            ? new RpcException(new Status(StatusCode.DeadlineExceeded, $"no answer within {_callTimeout.TotalMilliseconds:0} ms"))
            : (RpcException)ex);

    /// <summary>A failure of the way there rather than an answer: no reason trailer, and not the caller's cancellation.</summary>
    public static bool IsTransport(RpcException ex, CancellationToken cancellationToken) =>
        ex.Trailers.GetValue(WireHeaders.Reason) is null && !cancellationToken.IsCancellationRequested;

    /// <summary>Forgets the peer session (it ended on the other side); the next call opens a new one.</summary>
    public void SessionLost(Metadata headers) => Interlocked.CompareExchange(ref _headers, null, headers);

    public async ValueTask DisposeAsync()
    {
        await _closing.CancelAsync().ConfigureAwait(false);
        if (_keepAlive is not null)
        {
            await _keepAlive.ConfigureAwait(false);
        }

        if (Volatile.Read(ref _headers) is { } headers)
        {
            try
            {
                // Ends the peer session at once: its borrows drop now rather than a lease later.
                await _sessions.CloseAsync(new CloseSessionRequest(), new CallOptions(headers, DateTime.UtcNow + TimeSpan.FromSeconds(2))).ConfigureAwait(false);
            }
            catch (RpcException)
            {
                // Gone already: it ends its sessions itself.
            }
        }

        if (_calls is { } calls)
        {
            await calls.DisposeAsync().ConfigureAwait(false);
        }

        _channel.Dispose();
        _closing.Dispose();
        _opening.Dispose();
        _connecting.Dispose();
    }

    private async Task<Metadata> HeadersAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _headers) is { } headers)
        {
            return headers;
        }

        await _opening.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (Volatile.Read(ref _headers) is { } opened)
            {
                return opened;
            }

            var reply = await _sessions.OpenAsync(
                new OpenSessionRequest { LeaseMillis = (uint)RequestedLease.TotalMilliseconds, ClientName = OwnershipGraph.PeerClientPrefix + LocalWorker },
                new CallOptions(deadline: DateTime.UtcNow + _callTimeout, cancellationToken: cancellationToken)).ConfigureAwait(false);
            var token = ObjectId.FromBytes(reply.SessionToken.Span);
            var fresh = new Metadata { { WireHeaders.SessionToken, token.ToString() } };
            Volatile.Write(ref _hello, reply.Channel is { } offer && offer.Key.Length == ChannelMessages.KeyBytes ? ChannelMessages.Hello(token, offer.Key.Span) : null);
            Volatile.Write(ref _headers, fresh);
            _keepAlive ??= Task.Run(() => KeepAliveAsync(TimeSpan.FromMilliseconds(reply.LeaseMillis) / 3), CancellationToken.None);
            return fresh;
        }
        finally
        {
            _opening.Release();
        }
    }

    private async Task KeepAliveAsync(TimeSpan interval)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(_closing.Token).ConfigureAwait(false))
            {
                if (Volatile.Read(ref _headers) is not { } headers)
                {
                    continue;
                }

                try
                {
                    await _sessions.KeepAliveAsync(new KeepAliveRequest(), new CallOptions(headers, DateTime.UtcNow + _callTimeout, _closing.Token)).ConfigureAwait(false);
                }
                catch (RpcException ex) when (ex.Trailers.GetValue(WireHeaders.Reason) == ErrorReasons.SessionExpired)
                {
                    SessionLost(headers);
                    Diagnostics.WorkerLog.PeerSessionLost(_logger, Record.Id, Record.Address);
                }
                catch (RpcException)
                {
                    // Unreachable for now: the directory says whether it died; the next tick tries again.
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}

/// <summary>The other workers this worker has forwarded calls to, one <see cref="PeerWorker"/> each.</summary>
internal sealed class PeerWorkers(WorkerIdentity identity, WorkerOptions options, ILogger<PeerWorkers> logger) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<ObjectId, Lazy<PeerWorker>> _peers = new();
    private readonly DeadlineBuckets _deadlines = new();

    /// <summary>
    /// A forwarded call's deadline: one cluster lease. The other worker answers holder calls in microseconds unless it
    /// is gone, and a worker gone for a lease is dead to the directory, which then decides the answer (OWNER_DIED).
    /// </summary>
    private TimeSpan CallTimeout => options.ClusterLease;

    public PeerWorker Get(WorkerRecord record) =>
        _peers.GetOrAdd(record.Id, _ => new Lazy<PeerWorker>(() => new PeerWorker(record, identity.WorkerId.ToString(), CallTimeout, _deadlines, logger))).Value;

    /// <summary>Closes the connection to a worker that died.</summary>
    public async Task ForgetAsync(ObjectId workerId)
    {
        if (_peers.TryRemove(workerId, out var peer) && peer.IsValueCreated)
        {
            await peer.Value.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var id in _peers.Keys.ToList())
        {
            await ForgetAsync(id).ConfigureAwait(false);
        }

        _deadlines.Dispose();
    }
}

/// <summary>Another worker did not answer a call forwarded to it.</summary>
internal sealed class PeerUnreachableException(WorkerRecord worker, RpcException inner)
    : Exception($"Worker {worker.Id} at {worker.Address} does not answer: {inner.Status.Detail.TrimEnd('.')}.", inner)
{
    public WorkerRecord Worker { get; } = worker;
}
