using MessagePack;
using MessagePack.Resolvers;
using Microsoft.Extensions.Logging;

namespace RaySharing;

/// <summary>
/// Settings of a <see cref="RaySharingClient"/>. Every property states its default.
/// <see cref="RaySharingClient.ConnectAsync(RaySharingClientOptions?, CancellationToken)"/> validates and
/// copies them: changing this object afterwards does not change a connected client.
/// </summary>
public sealed class RaySharingClientOptions
{
    /// <summary>
    /// Room a message needs besides an object's bytes or a chunk: the header fields and at most one
    /// envelope (<c>16 KiB</c>, the envelope size limit).
    /// </summary>
    public const int MessageOverheadBytes = 16 << 10;

    /// <summary>The smallest <see cref="MaxMessageBytes"/>: the default <see cref="MaxUnaryObjectBytes"/> plus <see cref="MessageOverheadBytes"/> (1 MiB + 16 KiB).</summary>
    public const int MinMessageBytes = (1 << 20) + MessageOverheadBytes;

    /// <summary>The worker's address. Default <c>http://127.0.0.1:7480</c>.</summary>
    public Uri Address { get; set; } = new("http://127.0.0.1:7480");

    /// <summary>The session's namespace: where holders are created and looked up when no namespace is given. Default <c>default</c>.</summary>
    public string Namespace { get; set; } = "default";

    /// <summary>A name for this client in the worker's logs. Default: the process name.</summary>
    public string ClientName { get; set; } = Environment.ProcessPath is { } path ? Path.GetFileNameWithoutExtension(path) : "client";

    /// <summary>
    /// The deadline of every unary call (connect, put, get, fetch, register, ...), enforced by the client
    /// to within 50 ms: a call that does not complete in time is cancelled (so the worker stops working
    /// on it too) and fails with <see cref="RaySharingTimeoutException"/>. To bound one call more
    /// tightly, pass a <see cref="CancellationToken"/> that cancels sooner. Default 30 seconds.
    /// </summary>
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a streaming put or get may wait for its next chunk. Streams have no overall deadline,
    /// so objects of any size transfer; a stalled stream fails with <see cref="RaySharingTimeoutException"/>. Default 30 seconds.
    /// </summary>
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long to wait for the TCP connection to the worker. Default 5 seconds.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The session lease to ask for: if this client stops renewing (it crashed, or was killed), the worker
    /// ends the session after this long. Null takes the worker's default (10 seconds unless configured).
    /// Default null.
    /// </summary>
    public TimeSpan? Lease { get; set; }

    /// <summary>How often the lease is renewed; never less often than a third of the lease the worker granted. Null means a third of the granted lease. Default null.</summary>
    public TimeSpan? LeaseRenewInterval { get; set; }

    /// <summary>
    /// Objects up to this size travel in one message (unary put and get); larger ones stream in chunks
    /// of <see cref="ChunkBytes"/>. 0 to <see cref="MaxMessageBytes"/> less <see cref="MessageOverheadBytes"/>;
    /// the worker's own limit applies when smaller. Default 1 MiB.
    /// </summary>
    public int MaxUnaryObjectBytes { get; set; } = 1 << 20;

    /// <summary>
    /// The chunk size of streaming puts and gets, in bytes: 4 KiB to 4 MiB, and at most
    /// <see cref="MaxMessageBytes"/> less <see cref="MessageOverheadBytes"/> (64 KiB to 1 MiB is best). Default 256 KiB.
    /// </summary>
    public int ChunkBytes { get; set; } = 256 << 10;

    /// <summary>
    /// The largest gRPC message sent or received, in bytes; at least <see cref="MinMessageBytes"/> (1 MiB + 16 KiB),
    /// and it must hold <see cref="MaxUnaryObjectBytes"/> and <see cref="ChunkBytes"/> plus <see cref="MessageOverheadBytes"/>.
    /// A fetch reply holds many envelopes and is bounded by it too. Default 64 MiB.
    /// </summary>
    public int MaxMessageBytes { get; set; } = 64 << 20;

    /// <summary>
    /// How XLANG values are serialized. Default: MessagePack's contractless resolver (plain maps with
    /// string keys for classes without attributes, readable from any language) with
    /// <see cref="MessagePackSecurity.UntrustedData"/>, since objects may come from any process.
    /// </summary>
    public MessagePackSerializerOptions SerializerOptions { get; set; } =
        MessagePackSerializerOptions.Standard.WithResolver(ContractlessStandardResolver.Instance).WithSecurity(MessagePackSecurity.UntrustedData);

    /// <summary>
    /// Whether to move bytes through the worker's shared memory when it is on this host (Linux, same user or
    /// root): puts are written straight into the worker's store and gets read from it, and
    /// <see cref="RaySharingClient.GetLeaseAsync"/> is zero-copy. Detected when the session opens, nothing to
    /// configure; false sends every byte over the network. Default true.
    /// </summary>
    public bool UseSharedMemory { get; set; } = true;

    /// <summary>
    /// Whether to use the worker's binary channel when it serves one (protos/CHANNEL.md): small puts, gets, borrows
    /// and releases go over it (a Unix domain socket when the worker is on this host, TCP otherwise) at a fraction of
    /// a gRPC call's cost, and large objects move as channel bodies when shared memory is not in use. If the channel
    /// cannot be reached when the session opens, the client logs a warning and uses gRPC. False uses gRPC for
    /// everything (the portable path). Default true.
    /// </summary>
    public bool UseChannel { get; set; } = true;

    /// <summary>Where the client logs (lease renewals, failures). Default null: no logging.</summary>
    public ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first option that is out of range.</summary>
    public void Validate()
    {
        if (Address is null || !Address.IsAbsoluteUri || (Address.Scheme != Uri.UriSchemeHttp && Address.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException($"{nameof(Address)} must be an absolute http:// or https:// URI; got '{Address}'.", nameof(Address));
        }

        if (Wire.NameRules.Problem(Namespace, "namespace") is { } problem)
        {
            throw new ArgumentException($"{nameof(Namespace)}: {problem}", nameof(Namespace));
        }

        Positive(CallTimeout, nameof(CallTimeout));
        Positive(StreamIdleTimeout, nameof(StreamIdleTimeout));
        Positive(ConnectTimeout, nameof(ConnectTimeout));
        if (Lease is { } lease)
        {
            Positive(lease, nameof(Lease));
        }

        if (LeaseRenewInterval is { } renew)
        {
            Positive(renew, nameof(LeaseRenewInterval));
            if (Lease is { } l && renew >= l)
            {
                throw new ArgumentException($"{nameof(LeaseRenewInterval)} ({renew}) must be shorter than {nameof(Lease)} ({l}), or the lease lapses between renewals.", nameof(LeaseRenewInterval));
            }
        }

        if (ChunkBytes is < 4096 or > 4 << 20)
        {
            throw new ArgumentException($"{nameof(ChunkBytes)} must be 4 KiB to 4 MiB; got {ChunkBytes}.", nameof(ChunkBytes));
        }

        if (MaxMessageBytes < MinMessageBytes)
        {
            throw new ArgumentException($"{nameof(MaxMessageBytes)} must be at least {MinMessageBytes} bytes (1 MiB + 16 KiB); got {MaxMessageBytes}.", nameof(MaxMessageBytes));
        }

        if (MaxUnaryObjectBytes < 0 || MaxUnaryObjectBytes > MaxMessageBytes - MessageOverheadBytes)
        {
            throw new ArgumentException($"{nameof(MaxUnaryObjectBytes)} must be 0 to {nameof(MaxMessageBytes)} ({MaxMessageBytes}) less {MessageOverheadBytes} bytes; got {MaxUnaryObjectBytes}.", nameof(MaxUnaryObjectBytes));
        }

        if (ChunkBytes > MaxMessageBytes - MessageOverheadBytes)
        {
            throw new ArgumentException($"{nameof(ChunkBytes)} ({ChunkBytes}) must fit in {nameof(MaxMessageBytes)} ({MaxMessageBytes}) less {MessageOverheadBytes} bytes.", nameof(ChunkBytes));
        }

        if (string.IsNullOrEmpty(ClientName))
        {
            throw new ArgumentException($"{nameof(ClientName)} must not be empty.", nameof(ClientName));
        }

        if (SerializerOptions is null)
        {
            throw new ArgumentException($"{nameof(SerializerOptions)} must not be null.", nameof(SerializerOptions));
        }
    }

    /// <summary>A copy of these options; the client keeps one taken at connect, so later changes to this object do not reach it.</summary>
    public RaySharingClientOptions Clone() => (RaySharingClientOptions)MemberwiseClone();

    /// <summary>The longest time any option may be: what a timer takes. Infinite waits are what this library rules out.</summary>
    private static readonly TimeSpan MaxTime = TimeSpan.FromMilliseconds(int.MaxValue);

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero || value > MaxTime)
        {
            throw new ArgumentException($"{name} must be positive and at most {MaxTime.TotalDays:0.#} days (calls are never unbounded); got {value}.", name);
        }
    }
}
