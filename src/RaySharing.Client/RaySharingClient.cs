using System.Net.Http;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RaySharing.Internal;
using RaySharing.Wire;
using RaySharing.Protocol.V1;

namespace RaySharing;

/// <summary>
/// A session with a RaySharing worker: create and find holders, put and get objects, turn refs into
/// bytes and back. Thread-safe; share one per process. Dispose it to end the session, which releases
/// its borrows, frees the objects it put without an owner and kills its session-lifetime holders.
/// </summary>
public sealed partial class RaySharingClient : IAsyncDisposable
{
    private const int StreamWindowBytes = 16 << 20;

    private readonly RaySharingClientOptions _options;
    private readonly GrpcChannel _channel;
    private readonly Sessions.SessionsClient _sessions;
    private readonly Holders.HoldersClient _holders;
    private readonly Objects.ObjectsClient _objects;
    private readonly ILogger _logger;
    private readonly string _address;
    private readonly CancellationTokenSource _stopping = new();
    private readonly DeadlineBuckets _deadlines = new();
    private readonly Lock _replaceLock = new();
    private volatile ClientSession _session = null!;
    private Task? _replacing;
    private Task _leaseLoop = Task.CompletedTask;
    private int _disposed;

    private RaySharingClient(RaySharingClientOptions options, GrpcChannel channel, ILogger logger)
    {
        _options = options;
        _channel = channel;
        _logger = logger;
        _address = options.Address.ToString().TrimEnd('/');
        _sessions = new Sessions.SessionsClient(channel);
        _holders = new Holders.HoldersClient(channel);
        _objects = new Objects.ObjectsClient(channel);
    }

    /// <summary>
    /// The current session's id. Public: envelopes of the objects this session owns name it. Changes when the
    /// worker ends the session and the client opens a new one (<see cref="SessionReplaced"/>).
    /// </summary>
    public SessionId SessionId => new(_session.Id);

    /// <summary>The current session's secret credential, sent with every call; never published.</summary>
    internal ObjectId SessionToken => ObjectId.Parse(_session.Headers.GetValue(WireHeaders.SessionToken)!);

    /// <summary>The largest gRPC message this client sends or receives (<see cref="RaySharingClientOptions.MaxMessageBytes"/>).</summary>
    internal int MaxMessageBytes => _options.MaxMessageBytes;

    /// <summary>Objects up to this size use the unary put and get: the smaller of this client's and the worker's limit.</summary>
    internal int MaxUnaryObjectBytes => _session.MaxUnaryObjectBytes;

    /// <summary>The session calls run in now.</summary>
    internal ClientSession CurrentSession => _session;

    /// <summary>
    /// Raised, on a thread-pool thread, after the worker ended this client's session (it restarted on the same
    /// address, or the lease lapsed while this process could not renew it) and the client opened a new one by
    /// itself. New calls run in the new session. Refs and holders obtained before fail typed
    /// (<see cref="OwnerDiedException"/>, <see cref="ObjectFreedException"/>, <see cref="SessionExpiredException"/>);
    /// disposing them does nothing, since their borrows ended with the old session. Also logged as a warning
    /// (event id 1006). A handler that throws is logged and ignored.
    /// </summary>
    public event EventHandler<SessionReplacedEventArgs>? SessionReplaced;

    /// <summary>The session's namespace (<see cref="RaySharingClientOptions.Namespace"/>).</summary>
    public string Namespace => _options.Namespace;

    /// <summary>The lease the worker granted: if this process stops renewing it, the session ends after this long.</summary>
    public TimeSpan Lease => _session.Lease;

    /// <summary>The id of the worker instance this client's session is on; a restarted worker has a new one.</summary>
    public WorkerId WorkerId => new(_session.WorkerId);

    /// <summary>The address the worker advertises for itself.</summary>
    public string WorkerAddress => _session.WorkerAddress;

    /// <summary>
    /// Connects to a worker and opens a session, whose lease the client then renews in the background.
    /// </summary>
    /// <param name="options">
    /// Settings; null for the defaults (worker at <c>http://127.0.0.1:7480</c>). They are validated and copied
    /// here: changing <paramref name="options"/> after this call does not change the client.
    /// </param>
    /// <param name="cancellationToken">Cancels the connect.</param>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    /// <exception cref="WorkerUnavailableException">No worker answers at the address.</exception>
    /// <exception cref="RaySharingTimeoutException">The worker did not answer within <see cref="RaySharingClientOptions.CallTimeout"/>.</exception>
    public static async Task<RaySharingClient> ConnectAsync(RaySharingClientOptions? options = null, CancellationToken cancellationToken = default)
    {
        // A snapshot: the caller's object may change later, the live client must not (a chunk size of 0
        // set after connect would otherwise make streaming puts loop forever).
        options = (options ?? new RaySharingClientOptions()).Clone();
        options.Validate();
        var loggerFactory = options.LoggerFactory ?? NullLoggerFactory.Instance;
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = options.ConnectTimeout,
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = StreamWindowBytes,
            // Pings on an idle connection reveal a worker that vanished without closing its sockets.
            KeepAlivePingDelay = TimeSpan.FromSeconds(10),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
        };
        var channel = GrpcChannel.ForAddress(options.Address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = options.MaxMessageBytes,
            MaxSendMessageSize = options.MaxMessageBytes,
            LoggerFactory = options.LoggerFactory,
        });
        var client = new RaySharingClient(options, channel, loggerFactory.CreateLogger<RaySharingClient>());
        try
        {
            client._session = await client.OpenSessionAsync(cancellationToken).ConfigureAwait(false);
            client._leaseLoop = Task.Run(() => client.RenewLeaseAsync(client._stopping.Token), CancellationToken.None);
            return client;
        }
        catch
        {
            channel.Dispose();
            client._deadlines.Dispose();
            throw;
        }
    }

    // ---- Holders ----

    /// <summary>
    /// Returns the live holder named <paramref name="name"/>, creating it if there is none (Ray's
    /// <c>get_if_exists=True</c>). Concurrent callers all get the same incarnation. When the holder
    /// already exists, <paramref name="lifetime"/> is ignored.
    /// </summary>
    /// <param name="name">The holder's name, 1 to 1024 UTF-8 bytes.</param>
    /// <param name="lifetime">Detached (default): lives until killed. Session: dies with this session.</param>
    /// <param name="holderNamespace">The namespace; null for the session's.</param>
    /// <param name="cancellationToken">Cancels the call.</param>
    public async Task<ObjectHolder> GetOrCreateHolderAsync(string name, HolderLifetime lifetime = HolderLifetime.Detached, string? holderNamespace = null, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        ValidateNamespace(holderNamespace);
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("GetOrCreateHolder", _holders.GetOrCreateAsync(new GetOrCreateHolderRequest
        {
            Name = name,
            Namespace = holderNamespace ?? string.Empty,
            Lifetime = WireEnums.LifetimeToWire<Protocol.V1.HolderLifetime>(lifetime == HolderLifetime.Session),
        }, scope.Options), scope, cancellationToken, CallSubject.Holder(holderNamespace ?? Namespace, name)).ConfigureAwait(false);
        return new ObjectHolder(this, reply.Holder);
    }

    /// <summary>Returns the live holder named <paramref name="name"/>.</summary>
    /// <exception cref="HolderNotFoundException">No live holder has that name.</exception>
    public async Task<ObjectHolder> GetHolderAsync(string name, string? holderNamespace = null, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        ValidateNamespace(holderNamespace);
        var request = new GetHolderRequest { Name = name, Namespace = holderNamespace ?? string.Empty };
        var subject = CallSubject.Holder(holderNamespace ?? Namespace, name);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        if (session.Channel is { } channel)
        {
            return new ObjectHolder(this, await GetHolderOverChannelAsync(session, channel, request, subject, cancellationToken).ConfigureAwait(false));
        }

        var scope = BeginCall(cancellationToken, session.Headers);
        var reply = await UnaryAsync("GetHolder", _holders.GetAsync(request, scope.Options), scope, cancellationToken, subject).ConfigureAwait(false);
        return new ObjectHolder(this, reply.Holder);
    }

    /// <summary>Lists the live holders of a namespace (null for the session's).</summary>
    public async Task<IReadOnlyList<ObjectHolder>> ListHoldersAsync(string? holderNamespace = null, CancellationToken cancellationToken = default)
    {
        ValidateNamespace(holderNamespace);
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("ListHolders", _holders.ListAsync(
            new ListHoldersRequest { Namespace = holderNamespace ?? string.Empty },
            scope.Options), scope, cancellationToken).ConfigureAwait(false);
        return reply.Holders.Select(h => new ObjectHolder(this, h)).ToList();
    }

    /// <summary>Kills a holder: every object it owns is freed at once; refs to them fail with <see cref="OwnerDiedException"/>.</summary>
    /// <returns>How many objects the holder's worker freed. In a cluster, objects other workers store for the holder (put
    /// through them) are freed there, within a cluster lease at most, and are not counted.</returns>
    /// <exception cref="OwnerDiedException">This incarnation is already dead.</exception>
    public async Task<long> KillHolderAsync(ObjectHolder holder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(holder);
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("KillHolder", _holders.KillAsync(
            new KillHolderRequest { Holder = holder.Ref }, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return (long)reply.FreedObjects;
    }

    /// <summary>One Register call: one batch of envelopes (<see cref="ObjectHolder.RegisterAsync"/> makes the batches).</summary>
    internal async Task<int> RegisterBatchAsync(ObjectHolder holder, RegisterRequest request, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        if (session.Channel is { } channel && request.CalculateSize() <= channel.MaxPayloadBytes - (64 << 10))
        {
            return (int)await RegisterOverChannelAsync(session, channel, request, CallSubject.Holder(holder), cancellationToken).ConfigureAwait(false);
        }

        var scope = BeginCall(cancellationToken, session.Headers);
        var reply = await UnaryAsync("Register", _holders.RegisterAsync(request, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return (int)reply.Count;
    }

    /// <summary>
    /// One Fetch call: one page (<see cref="ObjectHolder.FetchAsync(string, CancellationToken)"/> reads them all),
    /// and the session its borrows belong to.
    /// </summary>
    internal async Task<(FetchReply Reply, ClientSession Session)> FetchPageAsync(ObjectHolder holder, FetchRequest request, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        if (session.Channel is { } channel)
        {
            return (await FetchOverChannelAsync(session, channel, request, CallSubject.Holder(holder), cancellationToken).ConfigureAwait(false), session);
        }

        var scope = BeginCall(cancellationToken, session.Headers);
        var reply = await UnaryAsync("Fetch", _holders.FetchAsync(request, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return (reply, scope.Session!);
    }

    internal async Task<int> UnregisterAsync(ObjectHolder holder, string key, CancellationToken cancellationToken)
    {
        ValidateKey(key);
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("Unregister", _holders.UnregisterAsync(
            new UnregisterRequest { Holder = holder.Ref, Key = key }, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return (int)reply.Removed;
    }

    internal async Task<IReadOnlyList<string>> ListKeysAsync(ObjectHolder holder, CancellationToken cancellationToken)
    {
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("ListKeys", _holders.ListKeysAsync(
            new ListKeysRequest { Holder = holder.Ref }, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return [.. reply.Keys];
    }

    internal async Task<IReadOnlyList<LostRef>> ListLostAsync(ObjectHolder holder, CancellationToken cancellationToken)
    {
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("ListLost", _holders.ListLostAsync(
            new ListLostRequest { Holder = holder.Ref }, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return [.. reply.Refs.Select(r =>
        {
            var envelope = EnvelopeCodec.Decode(r.Envelope.Memory);
            return new LostRef(r.Key, (int)r.Index, envelope.ObjectId, envelope.Location.Address, new WorkerId(envelope.Location.WorkerId));
        })];
    }

    // ---- Session ----

    /// <summary>The worker's object store: bytes used, capacity, live objects.</summary>
    public async Task<StoreStats> GetStoreStatsAsync(CancellationToken cancellationToken = default) =>
        (await GetWorkerStatsAsync(cancellationToken).ConfigureAwait(false)).Store;

    /// <summary>The worker's store figures, and the sessions and holders it hosts.</summary>
    public async Task<WorkerStats> GetWorkerStatsAsync(CancellationToken cancellationToken = default)
    {
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("Stats", _objects.StatsAsync(new StatsRequest(), scope.Options), scope, cancellationToken).ConfigureAwait(false);
        var store = new StoreStats((long)reply.UsedBytes, (long)reply.CapacityBytes, (long)reply.Objects)
        {
            SpilledBytes = (long)reply.SpilledBytes,
            SpillCapacityBytes = (long)reply.SpillCapacityBytes,
        };
        return new WorkerStats(store, (int)reply.Sessions, (int)reply.Holders);
    }

    /// <summary>
    /// Ends the session: the worker releases its borrows, frees the objects it put without an owner and
    /// kills its session-lifetime holders. Objects owned by holders live on. Never throws for a worker
    /// that is gone (the session then ends when its lease lapses).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await DisposeStoringWorkersAsync().ConfigureAwait(false);
        try
        {
            // The loop swallows its own failures; this guard keeps disposal from ever skipping the close.
            await _leaseLoop.ConfigureAwait(false);
            // A replacement under way ends (cancelled, or done) before the session it leaves is closed.
            Task? replacing;
            lock (_replaceLock)
            {
                replacing = _replacing;
            }

            await (replacing ?? Task.CompletedTask).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            ClientLog.CloseFailed(_logger, _session.Id, ex);
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(Math.Min(5, _options.CallTimeout.TotalSeconds)));
            await _sessions.CloseAsync(new CloseSessionRequest(), new CallOptions(_session.Headers, DateTime.UtcNow.AddSeconds(5), timeout.Token)).ConfigureAwait(false);
            ClientLog.SessionClosed(_logger, _session.Id);
        }
        catch (RpcException ex)
        {
            ClientLog.CloseFailed(_logger, _session.Id, ex);
        }
        finally
        {
            _session.Arena?.Dispose();
            if (_session.Channel is { } channel)
            {
                await channel.DisposeAsync().ConfigureAwait(false);
            }

            _channel.Dispose();
            _deadlines.Dispose();
            _stopping.Dispose();
        }
    }

    /// <summary>Opens a session; the call itself carries no session.</summary>
    private async Task<ClientSession> OpenSessionAsync(CancellationToken cancellationToken)
    {
        var scope = BeginCall(cancellationToken, []);
        var reply = await UnaryAsync("Connect", _sessions.OpenAsync(new OpenSessionRequest
        {
            Namespace = _options.Namespace,
            ClientName = _options.ClientName,
            LeaseMillis = _options.Lease is { } lease ? (uint)Math.Min(lease.TotalMilliseconds, uint.MaxValue) : 0,
        }, scope.Options), scope, cancellationToken).ConfigureAwait(false);

        var session = new ClientSession(
            ObjectId.FromBytes(reply.SessionId.Span),
            ObjectId.FromBytes(reply.SessionToken.Span),
            ObjectId.FromBytes(reply.WorkerId.Span),
            reply.WorkerAddress,
            TimeSpan.FromMilliseconds(reply.LeaseMillis),
            reply.MaxUnaryObjectBytes == 0 ? _options.MaxUnaryObjectBytes : (int)Math.Min(_options.MaxUnaryObjectBytes, reply.MaxUnaryObjectBytes));
        ClientLog.SessionOpened(_logger, session.Id, _address, session.WorkerId, reply.LeaseMillis);
        if (reply.SharedMemory is { } offer)
        {
            session.Arena = await AttachArenaAsync(session, offer, cancellationToken).ConfigureAwait(false);
        }

        if (reply.Channel is { } channel)
        {
            session.Channel = await OpenChannelAsync(session, channel, ObjectId.FromBytes(reply.SessionToken.Span), cancellationToken).ConfigureAwait(false);
        }

        return session;
    }

    /// <summary>
    /// Opens a new session in place of <paramref name="expired"/>, which the worker said has ended. One
    /// replacement at a time: callers that saw the same session end share it. Never throws; a failed attempt
    /// is logged and the next call or renewal that sees the ended session tries again.
    /// </summary>
    internal Task ReplaceSessionAsync(ClientSession expired)
    {
        lock (_replaceLock)
        {
            if (!ReferenceEquals(_session, expired) || Volatile.Read(ref _disposed) != 0)
            {
                return Task.CompletedTask;
            }

            return _replacing ??= Task.Run(() => ReplaceCoreAsync(expired));
        }
    }

    private async Task ReplaceCoreAsync(ClientSession expired)
    {
        try
        {
            var fresh = await OpenSessionAsync(_stopping.Token).ConfigureAwait(false);
            _session = fresh;
            // Leases taken in the old session keep its mapping until they are disposed.
            expired.Arena?.Dispose();
            if (expired.Channel is { } channel)
            {
                await channel.DisposeAsync().ConfigureAwait(false);
            }

            ClientLog.SessionReplaced(_logger, expired.Id, fresh.Id, expired.WorkerId, fresh.WorkerId, _address);
            try
            {
                SessionReplaced?.Invoke(this, new SessionReplacedEventArgs(new(expired.Id), new(fresh.Id), new(expired.WorkerId), new(fresh.WorkerId)));
            }
            catch (Exception ex)
            {
                ClientLog.SessionReplacedHandlerFailed(_logger, ex);
            }
        }
        catch (Exception ex) when (ex is RaySharingException or TimeoutException or OperationCanceledException or ObjectDisposedException)
        {
            ClientLog.SessionReplaceFailed(_logger, expired.Id, ex);
        }
        finally
        {
            lock (_replaceLock)
            {
                _replacing = null;
            }
        }
    }

    /// <summary>Starts replacing the session a failed call ran in when the worker said it has ended; returns the failure.</summary>
    private Exception Observe(Exception failure, ClientSession? session)
    {
        if (failure is SessionExpiredException && session is not null)
        {
            _ = ReplaceSessionAsync(session);
        }

        return failure;
    }

    /// <summary>
    /// Renews the lease until the client is disposed. When the worker says the session has ended, opens a new
    /// one and renews that. Never throws.
    /// </summary>
    private async Task RenewLeaseAsync(CancellationToken stopping)
    {
        using var timer = new PeriodicTimer(RenewInterval(_session));
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                var session = _session;
                try
                {
                    // A slow renewal may take up to the whole lease: on a starved machine that still keeps the
                    // session, and ticks missed meanwhile are skipped, not queued.
                    await _sessions.KeepAliveAsync(new KeepAliveRequest(), new CallOptions(session.Headers, DateTime.UtcNow + session.Lease, stopping)).ConfigureAwait(false);
                }
                catch (RpcException ex) when (ex.Trailers.GetValue(WireHeaders.Reason) == ErrorReasons.SessionExpired)
                {
                    ClientLog.SessionLost(_logger, session.Id);
                    await ReplaceSessionAsync(session).ConfigureAwait(false);
                    // The new session's lease may differ (a restarted worker may be configured otherwise).
                    timer.Period = RenewInterval(_session);
                }
                catch (RpcException ex) when (!stopping.IsCancellationRequested)
                {
                    ClientLog.LeaseRenewalFailed(_logger, session.Id, ex);
                }
            }
        }
        catch (Exception) when (stopping.IsCancellationRequested)
        {
            // Disposal cancelled the wait or a renewal in flight: the loop is done.
        }
    }

    /// <summary>
    /// Never slower than a third of the lease the worker granted, which may be shorter than the one asked for:
    /// two renewals may then be lost or late before the session is.
    /// </summary>
    private TimeSpan RenewInterval(ClientSession session) =>
        TimeSpan.FromTicks(Math.Min((_options.LeaseRenewInterval ?? session.Lease).Ticks, (session.Lease / 3).Ticks));

    /// <summary>
    /// Starts a unary call: the session header, and a cancellation token that fires at
    /// <see cref="RaySharingClientOptions.CallTimeout"/> or when the caller cancels.
    /// </summary>
    /// <remarks>
    /// The deadline is enforced here, through <see cref="DeadlineBuckets"/>, rather than sent as a gRPC
    /// deadline: a gRPC deadline costs a timer per call on both sides, a measurable share of a small put.
    /// A call past its deadline is cancelled, which resets its HTTP/2 stream, so the worker stops too.
    /// </remarks>
    private CallScope BeginCall(CancellationToken cancellationToken) => BeginCall(cancellationToken, null);

    private CallScope BeginCall(CancellationToken cancellationToken, Metadata? headers) => BeginCall(cancellationToken, headers, _options.CallTimeout);

    /// <summary>A call whose work grows with an object's size (a seal checks every byte): <paramref name="timeout"/> instead of CallTimeout.</summary>
    private CallScope BeginCall(CancellationToken cancellationToken, Metadata? headers, TimeSpan timeout)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var session = _session;
        headers ??= session.Headers;
        var deadline = _deadlines.TokenFor(timeout);
        return cancellationToken.CanBeCanceled
            ? new CallScope(new CallOptions(headers, cancellationToken: cancellationToken), deadline, armDeadline: true, session, timeout)
            : new CallScope(new CallOptions(headers, cancellationToken: deadline), deadline, armDeadline: false, session, timeout);
    }

    private async Task<TReply> UnaryAsync<TReply>(string operation, AsyncUnaryCall<TReply> call, CallScope scope, CancellationToken cancellationToken, CallSubject subject = default)
    {
        using (call)
        using (scope.Arm(call))
        {
            try
            {
                return await call.ResponseAsync.ConfigureAwait(false);
            }
            catch (RpcException ex)
            {
                throw UnaryFailure(ex, operation, call, scope, cancellationToken, subject);
            }
        }
    }

    /// <summary>What a failed unary call throws.</summary>
    private Exception UnaryFailure<TReply>(RpcException exception, string operation, AsyncUnaryCall<TReply> call, CallScope scope, CancellationToken cancellationToken, CallSubject subject) =>
        // The deadline fired: whatever status the cut-off call ended with (Cancelled, or Internal when it
        // was cut while starting), this is a timeout.
        scope.DeadlinePassed && !cancellationToken.IsCancellationRequested
            ? ExceptionFactory.Deadline(operation, _address, scope.Timeout, subject, RequestSent(call.ResponseHeadersAsync.IsCompletedSuccessfully), exception)
            : Observe(ExceptionFactory.FromRpc(exception, operation, _address, scope.Session?.Id ?? ObjectId.Empty, cancellationToken, subject), scope.Session);

    /// <summary>
    /// Whether a call that got no answer had reached the worker: true when the worker's response had begun,
    /// false when the channel never had a connection to send it on, null when it cannot be told.
    /// </summary>
    private bool? RequestSent(bool answered)
    {
        if (answered)
        {
            return true;
        }

        try
        {
            return _channel.State is ConnectivityState.Idle or ConnectivityState.Connecting or ConnectivityState.TransientFailure ? false : null;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>
    /// A started unary call's options and deadline. When the caller passed a token of its own, the call
    /// carries that token and the deadline cancels the call by disposing it: cheaper, per call, than
    /// linking the two tokens into a new source.
    /// </summary>
    private readonly struct CallScope(CallOptions options, CancellationToken deadline, bool armDeadline, ClientSession? session, TimeSpan timeout)
    {
        public CallOptions Options => options;

        /// <summary>The bound the deadline enforces.</summary>
        public TimeSpan Timeout => timeout;

        /// <summary>The session the call runs in; null while connecting.</summary>
        public ClientSession? Session => session;

        public bool DeadlinePassed => deadline.IsCancellationRequested;

        public CancellationTokenRegistration Arm(IDisposable call) =>
            armDeadline ? deadline.UnsafeRegister(static call => ((IDisposable)call!).Dispose(), call) : default;
    }

    private static void ValidateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (NameRules.Problem(name, "holder name") is { } problem)
        {
            throw new ArgumentException(problem, nameof(name));
        }
    }

    /// <summary>A namespace argument: null or empty means the session's; anything else follows the name rules.</summary>
    private static void ValidateNamespace(string? holderNamespace)
    {
        if (!string.IsNullOrEmpty(holderNamespace) && NameRules.Problem(holderNamespace, "namespace") is { } problem)
        {
            throw new ArgumentException(problem, nameof(holderNamespace));
        }
    }

    private static void ValidateKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (NameRules.Problem(key, "key") is { } problem)
        {
            throw new ArgumentException(problem, nameof(key));
        }
    }
}
