using Google.Protobuf;
using RaySharing.Protocol.V1;

namespace RaySharing;

/// <summary>
/// A named holder: an actor that owns objects and keeps a registry of key → ordered list of refs.
/// Every call is pinned to this incarnation: if the holder was killed (even if re-created under the
/// same name since), calls fail with <see cref="OwnerDiedException"/>.
/// </summary>
public sealed class ObjectHolder
{
    private readonly RaySharingClient _client;
    private readonly HolderRef _ref;

    internal ObjectHolder(RaySharingClient client, HolderInfo info)
    {
        _client = client;
        Namespace = info.Namespace;
        Name = info.Name;
        Incarnation = new HolderIncarnation(ObjectId.FromBytes(info.Incarnation.Span));
        Lifetime = info.Lifetime == Protocol.V1.HolderLifetime.Session ? HolderLifetime.Session : HolderLifetime.Detached;
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
    /// <returns>The length of the key's list after the call.</returns>
    /// <exception cref="RefNotOwnedException">A ref is owned by someone else; nothing was registered.</exception>
    /// <exception cref="OwnerDiedException">This holder incarnation is dead.</exception>
    public Task<int> RegisterAsync(string key, IEnumerable<ObjectRef> refs, CancellationToken cancellationToken = default) =>
        _client.RegisterAsync(this, key, refs, cancellationToken);

    /// <summary>
    /// Returns the refs registered under <paramref name="key"/>, in order: envelopes, never data. This
    /// session borrows each one until it is disposed.
    /// </summary>
    /// <exception cref="RegistryKeyNotFoundException">The key is not registered.</exception>
    /// <exception cref="OwnerDiedException">This holder incarnation is dead.</exception>
    public async Task<IReadOnlyList<ObjectRef>> FetchAsync(string key, CancellationToken cancellationToken = default) =>
        await _client.FetchAsync(this, key, RaySharingClient.RefFactories<object>.Untyped, cancellationToken).ConfigureAwait(false);

    /// <summary>Like <see cref="FetchAsync(string, CancellationToken)"/>, with each ref typed as <typeparamref name="T"/>.</summary>
    public async Task<IReadOnlyList<ObjectRef<T>>> FetchAsync<T>(string key, CancellationToken cancellationToken = default) =>
        await _client.FetchAsync(this, key, RaySharingClient.RefFactories<T>.Typed, cancellationToken).ConfigureAwait(false);

    /// <summary>Removes a key. Its objects are freed unless registered elsewhere or borrowed.</summary>
    /// <returns>How many refs the key held; 0 when it did not exist.</returns>
    public Task<int> UnregisterAsync(string key, CancellationToken cancellationToken = default) =>
        _client.UnregisterAsync(this, key, cancellationToken);

    /// <summary>Lists the keys of the registry.</summary>
    public Task<IReadOnlyList<string>> ListKeysAsync(CancellationToken cancellationToken = default) =>
        _client.ListKeysAsync(this, cancellationToken);

    /// <summary>Kills the holder: every object it owns is freed at once; refs to them fail with <see cref="OwnerDiedException"/>.</summary>
    /// <returns>How many objects were freed.</returns>
    public Task<long> KillAsync(CancellationToken cancellationToken = default) => _client.KillHolderAsync(this, cancellationToken);

    /// <inheritdoc/>
    public override string ToString() => $"ObjectHolder('{Namespace}/{Name}', incarnation {Incarnation})";
}
