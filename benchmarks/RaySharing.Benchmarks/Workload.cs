using System.Net.Http;
using Grpc.Net.Client;
using RaySharing.Benchmarks.V1;
using RaySharing.Testing;

namespace RaySharing.Benchmarks;

/// <summary>One timed call of a kind; refs it obtains go into the list, to be released after the timing.</summary>
internal delegate Task TimedCall(List<ObjectRef> obtained, CancellationToken cancellationToken);

/// <summary>
/// A worker in its own server process (this program in <c>serve</c> mode) with the echo service on its
/// Kestrel, a RaySharing session with a holder, and a bare gRPC channel to the same server configured like
/// the RaySharing client's, so that only RaySharing's own work separates the two sides.
/// </summary>
internal sealed class Workload : IAsyncDisposable
{
    /// <summary>The size of the small object and of the echo payload.</summary>
    public const int PayloadBytes = 100;

    private const string FetchKey = "bench-fetch";
    private const int ReleaseBatch = 1_000;

    private static readonly TimeSpan ServerStartTimeout = TimeSpan.FromSeconds(30);

    private readonly ChildProcess _server;
    private readonly RaySharingClient _client;
    private readonly ObjectHolder _holder;
    private readonly GrpcChannel _echoChannel;
    private readonly Echo.EchoClient _echo;
    private readonly ServerStats.ServerStatsClient _stats;
    private readonly EchoMessage _echoRequest;
    private readonly byte[] _payload;
    private readonly ObjectRef<byte[]> _stored;

    private Workload(ChildProcess server, RaySharingClient client, ObjectHolder holder, GrpcChannel echoChannel, byte[] payload, ObjectRef<byte[]> stored)
    {
        _server = server;
        _client = client;
        _holder = holder;
        _echoChannel = echoChannel;
        _echo = new Echo.EchoClient(echoChannel);
        _stats = new ServerStats.ServerStatsClient(echoChannel);
        _payload = payload;
        _echoRequest = new EchoMessage { Payload = Google.Protobuf.ByteString.CopyFrom(payload) };
        _stored = stored;
    }

    /// <summary>Starts the benchmark's worker process and connects the workload's client to it.</summary>
    /// <param name="useChannel">
    /// Whether the client's small calls go over the worker's binary channel (the data-plane run) or over gRPC (the
    /// small-call run, whose targets compare RaySharing's gRPC path with a bare gRPC call).
    /// </param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<Workload> StartAsync(bool useChannel, CancellationToken cancellationToken)
    {
        // The server's GC runs as the worker host's does (ConserveMemory 7 in its runtimeconfig); the child
        // inherits the variable, and this process's GC, already started, is unaffected.
        Environment.SetEnvironmentVariable("DOTNET_GCConserveMemory", "7");
        var server = ChildProcess.StartSelf("benchmark server", Serve.Mode);
        RaySharingClient? client = null;
        GrpcChannel? echoChannel = null;
        try
        {
            var line = await server.WaitForLineAsync(Serve.ListeningPrefix, ServerStartTimeout, cancellationToken).ConfigureAwait(false);
            var address = new Uri(line[Serve.ListeningPrefix.Length..].Trim());
            client = await RaySharingClient.ConnectAsync(new RaySharingClientOptions { Address = address, ClientName = "bench", UseChannel = useChannel }, cancellationToken).ConfigureAwait(false);
            var holder = await client.GetOrCreateHolderAsync("bench-holder", HolderLifetime.Session, cancellationToken: cancellationToken).ConfigureAwait(false);
            var payload = new byte[PayloadBytes];
            new Random(42).NextBytes(payload);
            var stored = await client.PutAsync(payload, holder, cancellationToken).ConfigureAwait(false);
            await holder.RegisterAsync(FetchKey, [stored], cancellationToken).ConfigureAwait(false);
            echoChannel = CreateEchoChannel(address);
            return new Workload(server, client, holder, echoChannel, payload, stored);
        }
        catch
        {
            echoChannel?.Dispose();
            if (client is not null)
            {
                await client.DisposeAsync().ConfigureAwait(false);
            }

            server.Dispose();
            throw;
        }
    }

    /// <summary>The RaySharing session the workload calls through.</summary>
    public RaySharingClient Client => _client;

    /// <summary>The session's holder, owner of everything the workload puts.</summary>
    public ObjectHolder Holder => _holder;

    /// <summary>The server process (its id for /proc, its stdout lines).</summary>
    public ChildProcess Server => _server;

    /// <summary>The bare gRPC channel to the server process, configured like the RaySharing client's.</summary>
    public GrpcChannel Channel => _echoChannel;

    /// <summary>A bare unary echo, disposed after its reply as the RaySharing client disposes its calls.</summary>
    public async Task EchoAsync(List<ObjectRef> obtained, CancellationToken cancellationToken)
    {
        using var call = _echo.EchoAsync(_echoRequest, cancellationToken: cancellationToken);
        await call.ResponseAsync.ConfigureAwait(false);
    }

    /// <summary>A put of the small object with the holder as owner.</summary>
    public async Task PutAsync(List<ObjectRef> obtained, CancellationToken cancellationToken) =>
        obtained.Add(await _client.PutAsync(_payload, _holder, cancellationToken).ConfigureAwait(false));

    /// <summary>A fetch of the key that holds one ref.</summary>
    public async Task FetchAsync(List<ObjectRef> obtained, CancellationToken cancellationToken) =>
        obtained.AddRange(await _holder.FetchAsync(FetchKey, cancellationToken).ConfigureAwait(false));

    /// <summary>A typed get of the small object.</summary>
    public async Task GetAsync(List<ObjectRef> obtained, CancellationToken cancellationToken)
    {
        var bytes = await _client.GetAsync(_stored, cancellationToken).ConfigureAwait(false);
        if (bytes.Length != PayloadBytes)
        {
            throw new InvalidOperationException($"A get returned {bytes.Length} bytes instead of {PayloadBytes}.");
        }
    }

    /// <summary>Releases refs obtained by timed calls, in batches, so the store and the session's borrows stay small.</summary>
    public async Task ReleaseAsync(List<ObjectRef> obtained, CancellationToken cancellationToken)
    {
        for (var offset = 0; offset < obtained.Count; offset += ReleaseBatch)
        {
            var batch = obtained.GetRange(offset, Math.Min(ReleaseBatch, obtained.Count - offset));
            await _client.ReleaseAsync(batch, cancellationToken).ConfigureAwait(false);
        }

        obtained.Clear();
    }

    /// <summary>
    /// The server process's counters, read over the echo channel; with <paramref name="collect"/>, its heap and
    /// working set after a full, aggressive, compacting collection.
    /// </summary>
    public async Task<ServerSample> SampleServerAsync(bool collect, CancellationToken cancellationToken) =>
        await _stats.SampleAsync(new SampleRequest { Collect = collect }, cancellationToken: cancellationToken).ConfigureAwait(false);

    /// <summary>The worker's object count, to check that releases keep up.</summary>
    public async Task<long> StoredObjectsAsync(CancellationToken cancellationToken) =>
        (await _client.GetStoreStatsAsync(cancellationToken).ConfigureAwait(false)).Objects;

    /// <summary>Closes the session, then kills the server process (nothing of it is needed any more).</summary>
    public async ValueTask DisposeAsync()
    {
        _echoChannel.Dispose();
        try
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            _server.Dispose();
        }
    }

    /// <summary>The channel settings of <see cref="RaySharingClient.ConnectAsync"/>, so the baseline is not handicapped or favoured.</summary>
    private static GrpcChannel CreateEchoChannel(Uri address)
    {
        var defaults = new RaySharingClientOptions();
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = defaults.ConnectTimeout,
            EnableMultipleHttp2Connections = true,
            InitialHttp2StreamWindowSize = 16 << 20,
            KeepAlivePingDelay = TimeSpan.FromSeconds(10),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.WithActiveRequests,
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
        };
        return GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = handler,
            DisposeHttpClient = true,
            MaxReceiveMessageSize = defaults.MaxMessageBytes,
            MaxSendMessageSize = defaults.MaxMessageBytes,
        });
    }
}
