using System.Collections.Concurrent;

namespace RaySharing.Worker.Ownership;

/// <summary>What the cluster's directory needs of the graph: holders by key, created with a claimed incarnation, and their deaths.</summary>
internal sealed partial class OwnershipGraph
{
    /// <summary>
    /// Raised once for each holder of this worker that dies (killed, its session ended, or the worker left its
    /// cluster), after it is unreachable by name; the cluster's directory drops its entry. Must not throw.
    /// </summary>
    public event Action<HolderState>? HolderDied;

    /// <summary>
    /// Raised by a release of ids the session does not borrow here (in a cluster, refs borrowed on another worker
    /// through this one), after the release; must not throw. Unset, such ids are ignored as before.
    /// </summary>
    public Action<SessionState, List<ObjectId>>? ForeignReleased { get; set; }

    /// <summary>Raised once for each session that ends (closed, lapsed, or the worker stopping); must not throw.</summary>
    public event Action<SessionState>? SessionEnded;

    /// <summary>What other workers of the cluster name their sessions here (<c>peer &lt;worker id&gt;</c>).</summary>
    public const string PeerClientPrefix = "peer ";

    /// <summary>The sessions other workers opened here, by the worker id their client name gives.</summary>
    public IReadOnlyList<(SessionState Session, ObjectId WorkerId)> PeerSessions() =>
        _sessionsByToken.Values
            .Where(s => s.ClientName.StartsWith(PeerClientPrefix, StringComparison.Ordinal))
            .Select(s => (Session: s, Ok: ObjectId.TryParse(s.ClientName.AsSpan(PeerClientPrefix.Length), out var id), Id: id))
            .Where(t => t.Ok)
            .Select(t => (t.Session, t.Id))
            .ToList();

    /// <summary>Ends a session at once (its worker died): what it borrowed is given back, what it owns dies.</summary>
    public void EndSessionOf(SessionState session, string why) => EndSession(session, why);

    /// <summary>Whether the session is still open (a cluster call that borrowed elsewhere for it checks before recording).</summary>
    public bool IsOpen(SessionState session) => _sessionsByToken.ContainsKey(session.Token);

    // Holders of other workers that calls here have been told of (get-or-create, get, list): a call on one of them
    // is answered WRONG_WORKER naming its worker, not HOLDER_NOT_FOUND or OWNER_DIED, which would be false.
    private readonly ConcurrentDictionary<HolderKey, HolderSnapshot> _remoteHolders = new();

    /// <summary>Notes that <paramref name="holder"/>, of another worker, was handed to a caller here.</summary>
    public void RememberRemoteHolder(HolderSnapshot holder) => _remoteHolders[holder.Key] = holder;

    /// <summary>The holder of another worker last handed out under <paramref name="key"/>, if any.</summary>
    public bool TryGetRemoteHolder(HolderKey key, out HolderSnapshot holder) => _remoteHolders.TryGetValue(key, out holder);

    /// <summary>Forgets a holder of another worker that died or moved.</summary>
    public void ForgetRemoteHolder(HolderKey key, ObjectId incarnation) =>
        _remoteHolders.TryRemove(new KeyValuePair<HolderKey, HolderSnapshot>(key, _remoteHolders.TryGetValue(key, out var known) && known.Incarnation == incarnation ? known : default));

    /// <summary>The error for a call naming a holder that lives on another worker, if this worker knows of it.</summary>
    private WorkerException? HolderElsewhere(HolderKey key, ObjectId? incarnation) =>
        _remoteHolders.TryGetValue(key, out var remote) && (incarnation is null || incarnation == remote.Incarnation)
            ? WorkerErrors.HolderElsewhere(remote, Identity.Address)
            : null;

    /// <summary>The key a call names: the session's namespace when <paramref name="ns"/> is empty, the name checked.</summary>
    /// <exception cref="WorkerException">SESSION_EXPIRED, or INVALID_REQUEST for a name that breaks the rules.</exception>
    public (SessionState Session, HolderKey Key) HolderKeyOf(ObjectId sessionToken, string ns, string name)
    {
        var session = RequireSession(sessionToken);
        return (session, new HolderKey(ResolveNamespace(ns, session), ValidateName(name, "holder name")));
    }

    /// <summary>The namespace a call names: the session's when <paramref name="ns"/> is empty.</summary>
    public string NamespaceOf(ObjectId sessionToken, string ns) => ResolveNamespace(ns, RequireSession(sessionToken));

    /// <summary>The live holder of <paramref name="key"/> on this worker, if there is one.</summary>
    public HolderSnapshot? TryGetLocalHolder(HolderKey key) =>
        _holders.TryGetValue(key, out var holder) ? holder.Snapshot() : null;

    /// <summary>
    /// Creates the holder whose incarnation the directory recorded for this worker (or returns the live one, had a
    /// concurrent call of this worker created it first).
    /// </summary>
    public (HolderSnapshot Holder, bool Created) CreateClaimedHolder(SessionState session, HolderKey key, ObjectId incarnation, HolderLifetimeKind lifetime) =>
        GetOrAddHolder(session, key, incarnation, lifetime);

    /// <summary>The holders alive on this worker now.</summary>
    public IReadOnlyList<HolderSnapshot> LocalHolders() => _holders.Values.Select(h => h.Snapshot()).ToList();

    /// <summary>Kills one holder of this worker, if it is still the live incarnation; false when it was not.</summary>
    public bool KillLocalHolder(HolderKey key, ObjectId incarnation, string why)
    {
        HolderState? holder;
        lock (_gate)
        {
            if (!_holders.TryGetValue(key, out holder) || holder.Incarnation != incarnation || !_holders.TryRemove(new KeyValuePair<HolderKey, HolderState>(key, holder)))
            {
                return false;
            }

            if (holder.Lifetime == HolderLifetimeKind.Session)
            {
                holder.CreatorSession.OwnedHolders.Remove(holder);
            }
        }

        Bury(holder, why);
        return true;
    }

    /// <summary>Kills every holder of this worker (it left its cluster); returns how many.</summary>
    public int KillAllHolders(string why) =>
        _holders.Values.ToList().Count(holder => KillLocalHolder(holder.Key, holder.Incarnation, why));
}
