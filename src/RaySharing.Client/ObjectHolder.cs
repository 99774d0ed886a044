using Google.Protobuf;
using RaySharing.Internal;
using RaySharing.Wire;
using RaySharing.Protocol.V1;

namespace RaySharing;

/// <summary>
/// A named holder: an actor that owns objects and keeps a registry of key → ordered list of refs.
/// Every call is pinned to this incarnation: if the holder was killed (even if re-created under the
/// same name since), calls fail with <see cref="OwnerDiedException"/>.
/// </summary>
public sealed class ObjectHolder
{
    /// <summary>The <see cref="Exception.Data"/> key under which a failed <see cref="RegisterAsync"/> gives the number of refs its earlier batches registered.</summary>
    public const string RegisteredRefsDataKey = "RaySharing.RegisteredRefs";

    // Below the smallest MaxMessageBytes a worker accepts (1 MiB), so any worker takes a batch.
    private const int RegisterBatchBytes = 960 << 10;
    private const int FetchPageBytes = 4 << 20;
    // A repeated bytes field costs a tag byte and a length of at most 3 bytes (envelopes are at most 16 KiB).
    private const int EnvelopeFraming = 4;
    private const int MaxFetchAttempts = 3;

    private readonly RaySharingClient _client;
    private readonly HolderRef _ref;

    internal ObjectHolder(RaySharingClient client, HolderInfo info)
    {
        _client = client;
        Namespace = info.Namespace;
        Name = info.Name;
        Incarnation = new HolderIncarnation(ObjectId.FromBytes(info.Incarnation.Span));
        Lifetime = WireEnums.TryLifetimeFromWire(info.Lifetime, out var session) && session ? HolderLifetime.Session : HolderLifetime.Detached;
        WorkerAddress = info.WorkerAddress;
        _ref = new HolderRef { Namespace = Namespace, Name = Name, Incarnation = UnsafeByteOperations.UnsafeWrap(Incarnation.ToByteArray()) };
    }

    /// <summary>The holder's namespace.</summary>
    public string Namespace { get; }

    /// <summary>The holder's name.</summary>
    public string Name { get; }

    /// <summary>This incarnation of the holder; a holder re-created under the same name has a new one.</summary>
    public HolderIncarnation Incarnation { get; }

    /// <summary>Whether the holder lives until killed or until its creating session ends.</summary>
    public HolderLifetime Lifetime { get; }

    /// <summary>The address of the worker that hosts the holder.</summary>
    public string WorkerAddress { get; }

    internal HolderRef Ref => _ref;

    internal RaySharingClient Client => _client;

    /// <summary>
    /// Appends refs, in order, to the list registered under <paramref name="key"/> (creating the key).
    /// Registered objects live until the key is unregistered or the holder dies, whatever happens to
    /// the sessions that put them. Every ref must be owned by this holder.
    /// </summary>
    /// <remarks>
    /// Refs are sent in batches of at most 960 KiB of envelopes (about 9,000 refs), each one call that the
    /// worker applies whole or not at all. Bad input registers nothing: a null or released ref, or (when
    /// more than one batch is needed) a ref not owned by this holder, is refused before anything is sent.
    /// A failure after the first batch (the holder killed, the session ended, the worker unreachable, a
    /// timeout) leaves the earlier batches registered; the exception's <see cref="Exception.Data"/> then
    /// holds their number of refs under <see cref="RegisteredRefsDataKey"/>.
    /// </remarks>
    /// <param name="key">The key, 1 to 1024 UTF-8 bytes of text without control characters, not blank.</param>
    /// <param name="refs">The refs, enumerated once.</param>
    /// <param name="cancellationToken">Cancels the call; batches already acknowledged stay registered.</param>
    /// <returns>The length of the key's list after the call.</returns>
    /// <exception cref="RefNotOwnedException">A ref is owned by someone else; nothing was registered.</exception>
    /// <exception cref="OwnerDiedException">This holder incarnation is dead.</exception>
    /// <exception cref="ObjectDisposedException">A ref was disposed or released; nothing was registered.</exception>
    public async Task<int> RegisterAsync(string key, IEnumerable<ObjectRef> refs, CancellationToken cancellationToken = default)
    {
        ValidateKey(key);
        ArgumentNullException.ThrowIfNull(refs);
        var all = refs as IReadOnlyList<ObjectRef> ?? [.. refs];
        long bytes = 0;
        foreach (var objectRef in all)
        {
            ArgumentNullException.ThrowIfNull(objectRef, nameof(refs));
            ObjectDisposedException.ThrowIf(objectRef.IsReleased, objectRef);
            bytes += objectRef.EnvelopeBytes.Length + EnvelopeFraming;
        }

        if (bytes > RegisterBatchBytes)
        {
            // The worker checks each batch whole; across batches only a check here keeps bad input from registering a part.
            var owner = new ObjectOwner(OwnerKind.Holder, Namespace, Name, Incarnation.Value);
            foreach (var objectRef in all)
            {
                if (objectRef.Owner != owner)
                {
                    throw Internal.ExceptionFactory.NotOwned(objectRef, this);
                }
            }
        }

        var next = 0;
        var registered = 0;
        while (true)
        {
            var request = new RegisterRequest { Holder = _ref, Key = key };
            long batch = 0;
            while (next < all.Count && (request.Envelopes.Count == 0 || batch + all[next].EnvelopeBytes.Length + EnvelopeFraming <= RegisterBatchBytes))
            {
                batch += all[next].EnvelopeBytes.Length + EnvelopeFraming;
                request.Envelopes.Add(UnsafeByteOperations.UnsafeWrap(all[next++].EnvelopeBytes));
            }

            int count;
            try
            {
                count = await _client.RegisterBatchAsync(this, request, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (registered > 0)
            {
                ex.Data[RegisteredRefsDataKey] = registered;
                throw;
            }

            registered += request.Envelopes.Count;
            if (next >= all.Count)
            {
                return count;
            }
        }
    }

    /// <summary>
    /// Returns the refs registered under <paramref name="key"/>, in order: envelopes, never data. This
    /// session borrows each one until it is disposed.
    /// </summary>
    /// <remarks>
    /// A long list is read in pages of at most 4 MiB (or <see cref="RaySharingClientOptions.MaxMessageBytes"/>),
    /// so a key of any length can be fetched; the result holds the refs the list had when the first page
    /// was read. When the key is unregistered (and maybe registered again) while the pages are read, the
    /// refs read so far are released and the list is read again from its start, up to 3 times; the
    /// result never mixes two lists. On any failure the refs already read are released.
    /// </remarks>
    /// <exception cref="RegistryKeyNotFoundException">The key is not registered.</exception>
    /// <exception cref="OwnerDiedException">This holder incarnation is dead.</exception>
    /// <exception cref="RaySharingException">Reason <c>LIST_CHANGED</c>: the list was replaced during each of 3 reads.</exception>
    public async Task<IReadOnlyList<ObjectRef>> FetchAsync(string key, CancellationToken cancellationToken = default) =>
        await FetchCoreAsync(key, RaySharingClient.RefFactories<object>.Untyped, cancellationToken).ConfigureAwait(false);

    /// <summary>Like <see cref="FetchAsync(string, CancellationToken)"/>, with each ref typed as <typeparamref name="T"/>.</summary>
    public async Task<IReadOnlyList<ObjectRef<T>>> FetchAsync<T>(string key, CancellationToken cancellationToken = default) =>
        await FetchCoreAsync(key, RaySharingClient.RefFactories<T>.Typed, cancellationToken).ConfigureAwait(false);

    /// <summary>Removes a key. Its objects are freed unless registered elsewhere or borrowed.</summary>
    /// <returns>How many refs the key held; 0 when it did not exist.</returns>
    public Task<int> UnregisterAsync(string key, CancellationToken cancellationToken = default) =>
        _client.UnregisterAsync(this, key, cancellationToken);

    /// <summary>Lists the keys of the registry.</summary>
    public Task<IReadOnlyList<string>> ListKeysAsync(CancellationToken cancellationToken = default) =>
        _client.ListKeysAsync(this, cancellationToken);

    /// <summary>
    /// Lists the refs registered with this holder whose objects are lost: in a cluster, objects put through another
    /// worker, which stores their bytes, that died while this holder lives. Gets of them fail with
    /// <see cref="ObjectLostException"/>; they stay registered until their key is unregistered. Always empty with a
    /// single worker.
    /// </summary>
    public Task<IReadOnlyList<LostRef>> GetLostRefsAsync(CancellationToken cancellationToken = default) =>
        _client.ListLostAsync(this, cancellationToken);

    /// <summary>Kills the holder: every object it owns is freed at once; refs to them fail with <see cref="OwnerDiedException"/>.</summary>
    /// <returns>How many objects the holder's worker freed. In a cluster, objects other workers store for the holder (put
    /// through them) are freed there, within a cluster lease at most, and are not counted.</returns>
    public Task<long> KillAsync(CancellationToken cancellationToken = default) => _client.KillHolderAsync(this, cancellationToken);

    private async Task<List<TRef>> FetchCoreAsync<TRef>(string key, RaySharingClient.RefFactory<TRef> create, CancellationToken cancellationToken)
        where TRef : ObjectRef
    {
        ValidateKey(key);
        var pageBytes = (uint)Math.Min(FetchPageBytes, _client.MaxMessageBytes);
        for (var attempt = 1; ; attempt++)
        {
            var refs = new List<TRef>();
            try
            {
                var (reply, session) = await FetchPageAsync(key, 0, 0, pageBytes, 0, cancellationToken).ConfigureAwait(false);
                var total = (int)reply.Total;
                var version = reply.ListVersion;
                refs.Capacity = total;
                while (true)
                {
                    foreach (var envelope in reply.Envelopes)
                    {
                        refs.Add(_client.AdoptBorrowed(envelope, create, session));
                    }

                    if (refs.Count >= total)
                    {
                        return refs;
                    }

                    if (reply.Envelopes.Count == 0)
                    {
                        // A list shrinks only by being replaced; a worker that did not say so is answered as if it had.
                        throw new RaySharingException(ErrorReasons.ListChanged, $"The list under key '{key}' of {this} ended after {refs.Count} of its {total} refs.");
                    }

                    (reply, session) = await FetchPageAsync(key, refs.Count, total - refs.Count, pageBytes, version, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (RaySharingException ex) when (attempt < MaxFetchAttempts && (ex.Reason == ErrorReasons.ListChanged || (ex is RegistryKeyNotFoundException && refs.Count > 0)))
            {
                // Unregistered between two pages: read the list again from its start.
                await ReleaseQuietlyAsync(refs).ConfigureAwait(false);
            }
            catch (RegistryKeyNotFoundException ex)
            {
                await ReleaseQuietlyAsync(refs).ConfigureAwait(false);
                throw new RegistryKeyNotFoundException(ex.Message, Namespace, Name, key);
            }
            catch
            {
                await ReleaseQuietlyAsync(refs).ConfigureAwait(false);
                throw;
            }
        }
    }

    /// <summary>One page of a key's list (protos/raysharing/v1/holders.proto, FetchRequest).</summary>
    internal Task<(FetchReply Reply, ClientSession Session)> FetchPageAsync(string key, int start, int maxCount, uint maxBytes, ulong listVersion, CancellationToken cancellationToken) =>
        _client.FetchPageAsync(this, new FetchRequest
        {
            Holder = _ref,
            Key = key,
            Start = (uint)start,
            MaxCount = (uint)maxCount,
            MaxBytes = maxBytes,
            ListVersion = listVersion,
        }, cancellationToken);

    /// <summary>Gives back the borrows of a fetch that failed, in calls of bounded size; never throws.</summary>
    private async Task ReleaseQuietlyAsync<TRef>(List<TRef> refs)
        where TRef : ObjectRef
    {
        try
        {
            await _client.ReleaseAsync(refs, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RaySharingException or TimeoutException or ObjectDisposedException)
        {
            // The fetch's own failure is what the caller needs; the worker drops these borrows when the session ends.
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

    /// <inheritdoc/>
    public override string ToString() => $"ObjectHolder('{Namespace}/{Name}', incarnation {Incarnation})";
}
