using System.Net.Http;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RaySharing.Internal;
using RaySharing.Protocol;
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
    private readonly Metadata _sessionHeaders;
    private readonly ILogger _logger;
    private readonly string _address;
    private readonly CancellationTokenSource _stopping = new();
    private readonly DeadlineBuckets _deadlines = new();
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
        _sessionHeaders = [];
    }

    /// <summary>This session's id. Public: envelopes of the objects this session owns name it.</summary>
    public ObjectId SessionId { get; private set; }

    /// <summary>The session's secret credential, sent with every call; never published.</summary>
    internal ObjectId SessionToken { get; private set; }

    /// <summary>Objects up to this size use the unary put and get: the smaller of this client's and the worker's limit.</summary>
    internal int MaxUnaryObjectBytes { get; private set; }

    /// <summary>The session's namespace (<see cref="RaySharingClientOptions.Namespace"/>).</summary>
    public string Namespace => _options.Namespace;

    /// <summary>The lease the worker granted: if this process stops renewing it, the session ends after this long.</summary>
    public TimeSpan Lease { get; private set; }

    /// <summary>The id of the worker instance this client is connected to.</summary>
    public ObjectId WorkerId { get; private set; }

    /// <summary>The address the worker advertises for itself.</summary>
    public string WorkerAddress { get; private set; } = string.Empty;

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
            await client.OpenSessionAsync(cancellationToken).ConfigureAwait(false);
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
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("GetOrCreateHolder", _holders.GetOrCreateAsync(new GetOrCreateHolderRequest
        {
            Name = name,
            Namespace = holderNamespace ?? string.Empty,
            Lifetime = lifetime == HolderLifetime.Session ? Protocol.V1.HolderLifetime.Session : Protocol.V1.HolderLifetime.Detached,
        }, scope.Options), scope, cancellationToken, CallSubject.Holder(holderNamespace ?? Namespace, name)).ConfigureAwait(false);
        return new ObjectHolder(this, reply.Holder);
    }

    /// <summary>Returns the live holder named <paramref name="name"/>.</summary>
    /// <exception cref="HolderNotFoundException">No live holder has that name.</exception>
    public async Task<ObjectHolder> GetHolderAsync(string name, string? holderNamespace = null, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("GetHolder", _holders.GetAsync(
            new GetHolderRequest { Name = name, Namespace = holderNamespace ?? string.Empty },
            scope.Options), scope, cancellationToken, CallSubject.Holder(holderNamespace ?? Namespace, name)).ConfigureAwait(false);
        return new ObjectHolder(this, reply.Holder);
    }

    /// <summary>Lists the live holders of a namespace (null for the session's).</summary>
    public async Task<IReadOnlyList<ObjectHolder>> ListHoldersAsync(string? holderNamespace = null, CancellationToken cancellationToken = default)
    {
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("ListHolders", _holders.ListAsync(
            new ListHoldersRequest { Namespace = holderNamespace ?? string.Empty },
            scope.Options), scope, cancellationToken).ConfigureAwait(false);
        return reply.Holders.Select(h => new ObjectHolder(this, h)).ToList();
    }

    /// <summary>Kills a holder: every object it owns is freed at once; refs to them fail with <see cref="OwnerDiedException"/>.</summary>
    /// <returns>How many objects were freed.</returns>
    /// <exception cref="OwnerDiedException">This incarnation is already dead.</exception>
    public async Task<long> KillHolderAsync(ObjectHolder holder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(holder);
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("KillHolder", _holders.KillAsync(
            new KillHolderRequest { Holder = holder.Ref }, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return (long)reply.FreedObjects;
    }

    internal async Task<int> RegisterAsync(ObjectHolder holder, string key, IEnumerable<ObjectRef> refs, CancellationToken cancellationToken)
    {
        ValidateKey(key);
        ArgumentNullException.ThrowIfNull(refs);
        var request = new RegisterRequest { Holder = holder.Ref, Key = key };
        foreach (var objectRef in refs)
        {
            ArgumentNullException.ThrowIfNull(objectRef, nameof(refs));
            request.Envelopes.Add(UnsafeByteOperations.UnsafeWrap(objectRef.EnvelopeBytes));
        }

        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("Register", _holders.RegisterAsync(request, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        return (int)reply.Count;
    }

    internal async Task<TRef[]> FetchAsync<TRef>(ObjectHolder holder, string key, RefFactory<TRef> create, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        ValidateKey(key);
        FetchReply reply;
        try
        {
            var scope = BeginCall(cancellationToken);
            reply = await UnaryAsync("Fetch", _holders.FetchAsync(
                new FetchRequest { Holder = holder.Ref, Key = key }, scope.Options), scope, cancellationToken, CallSubject.Holder(holder)).ConfigureAwait(false);
        }
        catch (RegistryKeyNotFoundException ex)
        {
            throw new RegistryKeyNotFoundException(ex.Message, holder.Namespace, holder.Name, key);
        }

        var refs = new TRef[reply.Envelopes.Count];
        for (var i = 0; i < refs.Length; i++)
        {
            refs[i] = AdoptBorrowed(reply.Envelopes[i], create);
        }

        return refs;
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

    // ---- Session ----

    /// <summary>Store usage and counts of the worker.</summary>
    public async Task<StoreStats> GetStoreStatsAsync(CancellationToken cancellationToken = default)
    {
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("Stats", _objects.StatsAsync(new StatsRequest(), scope.Options), scope, cancellationToken).ConfigureAwait(false);
        return new StoreStats((long)reply.UsedBytes, (long)reply.CapacityBytes, (long)reply.Objects, (int)reply.Sessions, (int)reply.Holders);
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
        try
        {
            // The loop swallows its own failures; this guard keeps disposal from ever skipping the close.
            await _leaseLoop.ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            ClientLog.CloseFailed(_logger, SessionId, ex);
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(Math.Min(5, _options.CallTimeout.TotalSeconds)));
            await _sessions.CloseAsync(new CloseSessionRequest(), new CallOptions(_sessionHeaders, DateTime.UtcNow.AddSeconds(5), timeout.Token)).ConfigureAwait(false);
            ClientLog.SessionClosed(_logger, SessionId);
        }
        catch (RpcException ex)
        {
            ClientLog.CloseFailed(_logger, SessionId, ex);
        }
        finally
        {
            _channel.Dispose();
            _deadlines.Dispose();
            _stopping.Dispose();
        }
    }

    private async Task OpenSessionAsync(CancellationToken cancellationToken)
    {
        var scope = BeginCall(cancellationToken);
        var reply = await UnaryAsync("Connect", _sessions.OpenAsync(new OpenSessionRequest
        {
            Namespace = _options.Namespace,
            ClientName = _options.ClientName,
            LeaseMillis = _options.Lease is { } lease ? (uint)Math.Min(lease.TotalMilliseconds, uint.MaxValue) : 0,
        }, scope.Options), scope, cancellationToken).ConfigureAwait(false);

        SessionId = ObjectId.FromBytes(reply.SessionId.Span);
        SessionToken = ObjectId.FromBytes(reply.SessionToken.Span);
        MaxUnaryObjectBytes = reply.MaxUnaryObjectBytes == 0 ? _options.MaxUnaryObjectBytes : (int)Math.Min(_options.MaxUnaryObjectBytes, reply.MaxUnaryObjectBytes);
        WorkerId = ObjectId.FromBytes(reply.WorkerId.Span);
        WorkerAddress = reply.WorkerAddress;
        Lease = TimeSpan.FromMilliseconds(reply.LeaseMillis);
        _sessionHeaders.Add(WireHeaders.SessionToken, SessionToken.ToString());
        ClientLog.SessionOpened(_logger, SessionId, _address, WorkerId, reply.LeaseMillis);
        _leaseLoop = Task.Run(() => RenewLeaseAsync(_stopping.Token), CancellationToken.None);
    }

    /// <summary>Renews the lease until the client is disposed or the worker says the session has ended. Never throws.</summary>
    private async Task RenewLeaseAsync(CancellationToken stopping)
    {
        // Never slower than a third of the lease the worker granted, which may be shorter than the one asked
        // for: two renewals may then be lost or late before the session is.
        var interval = TimeSpan.FromTicks(Math.Min((_options.LeaseRenewInterval ?? Lease).Ticks, (Lease / 3).Ticks));
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stopping).ConfigureAwait(false))
            {
                try
                {
                    // A slow renewal may take up to the whole lease: on a starved machine that still keeps the
                    // session, and ticks missed meanwhile are skipped, not queued.
                    await _sessions.KeepAliveAsync(new KeepAliveRequest(), new CallOptions(_sessionHeaders, DateTime.UtcNow + Lease, stopping)).ConfigureAwait(false);
                }
                catch (RpcException ex) when (ex.Trailers.GetValue(WireHeaders.Reason) == ErrorReasons.SessionExpired)
                {
                    ClientLog.SessionLost(_logger, SessionId);
                    return;
                }
                catch (RpcException ex) when (!stopping.IsCancellationRequested)
                {
                    ClientLog.LeaseRenewalFailed(_logger, SessionId, ex);
                }
            }
        }
        catch (Exception) when (stopping.IsCancellationRequested)
        {
            // Disposal cancelled the wait or a renewal in flight: the loop is done.
        }
    }

    /// <summary>
    /// Starts a unary call: the session header, and a cancellation token that fires at
    /// <see cref="RaySharingClientOptions.CallTimeout"/> or when the caller cancels.
    /// </summary>
    /// <remarks>
    /// The deadline is enforced here, through <see cref="DeadlineBuckets"/>, rather than sent as a gRPC
    /// deadline: a gRPC deadline costs a timer per call on both sides, a measurable share of a small put.
    /// A call past its deadline is cancelled, which resets its HTTP/2 stream, so the worker stops too.
    /// </remarks>
    private CallScope BeginCall(CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        var deadline = _deadlines.TokenFor(_options.CallTimeout);
        return cancellationToken.CanBeCanceled
            ? new CallScope(new CallOptions(_sessionHeaders, cancellationToken: cancellationToken), deadline, armDeadline: true)
            : new CallScope(new CallOptions(_sessionHeaders, cancellationToken: deadline), deadline, armDeadline: false);
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
            ? ExceptionFactory.Deadline(operation, _address, _options.CallTimeout, subject, RequestSent(call.ResponseHeadersAsync.IsCompletedSuccessfully), exception)
            : ExceptionFactory.FromRpc(exception, operation, _address, SessionId, cancellationToken, subject);

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
    private readonly struct CallScope(CallOptions options, CancellationToken deadline, bool armDeadline)
    {
        public CallOptions Options => options;

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

    private static void ValidateKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (NameRules.Problem(key, "key") is { } problem)
        {
            throw new ArgumentException(problem, nameof(key));
        }
    }
}
