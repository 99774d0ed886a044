using System.Collections.Concurrent;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Cluster;

/// <summary>
/// Refs this worker's sessions borrowed on other workers: a fetch forwarded to another worker's holder borrows
/// there, through this worker's peer session. Each is given back there when the local session releases it or ends,
/// so the other worker's reference counts see this worker's sessions as its own. Thread-safe.
/// </summary>
internal sealed class RemoteBorrows
{
    private readonly ConcurrentDictionary<ObjectId, SessionBorrows> _sessions = new();
    private readonly OwnershipGraph _graph;
    private readonly ILogger<RemoteBorrows> _logger;

    public RemoteBorrows(OwnershipGraph graph, ILogger<RemoteBorrows> logger)
    {
        _graph = graph;
        _logger = logger;
        graph.ForeignReleased = Released;
        graph.SessionEnded += Ended;
    }

    /// <summary>Refs borrowed for <paramref name="session"/> through <paramref name="peer"/>, once each.</summary>
    public void Add(SessionState session, PeerWorker peer, IEnumerable<ObjectId> ids)
    {
        var borrows = _sessions.GetOrAdd(session.Id, _ => new SessionBorrows());
        lock (borrows)
        {
            foreach (var id in ids)
            {
                borrows.Add(id, peer);
            }
        }

        if (!_graph.IsOpen(session))
        {
            // Ended while the call was under way: nothing will release these, so give them back now.
            Ended(session);
        }
    }

    /// <summary>Gives back refs borrowed through <paramref name="peer"/> that no session came to hold (a failed call's).</summary>
    public void GiveBack(PeerWorker peer, List<ObjectId> ids) => _ = ReleaseAsync(peer, ids);

    /// <summary>How many refs a session borrows elsewhere (tests, stats).</summary>
    public int CountOf(ObjectId sessionId)
    {
        if (!_sessions.TryGetValue(sessionId, out var borrows))
        {
            return 0;
        }

        lock (borrows)
        {
            return borrows.Count;
        }
    }

    private void Released(SessionState session, List<ObjectId> ids)
    {
        if (!_sessions.TryGetValue(session.Id, out var borrows))
        {
            return;
        }

        var giveBack = new List<(PeerWorker, ObjectId)>();
        lock (borrows)
        {
            foreach (var id in ids)
            {
                if (borrows.TryTake(id, out var peer))
                {
                    giveBack.Add((peer, id));
                }
            }
        }

        Send(giveBack);
    }

    private void Ended(SessionState session)
    {
        if (!_sessions.TryRemove(session.Id, out var borrows))
        {
            return;
        }

        var giveBack = new List<(PeerWorker, ObjectId)>();
        lock (borrows)
        {
            foreach (var (id, held) in borrows.Counts)
            {
                foreach (var (peer, count) in held)
                {
                    giveBack.AddRange(Enumerable.Repeat((peer, id), count));
                }
            }

            borrows.Counts.Clear();
        }

        Send(giveBack);
    }

    private void Send(List<(PeerWorker Peer, ObjectId Id)> giveBack)
    {
        foreach (var group in giveBack.GroupBy(b => b.Peer))
        {
            _ = ReleaseAsync(group.Key, group.Select(b => b.Id).ToList());
        }
    }

    /// <summary>One release on the other worker; never throws (a worker that is gone dropped the borrows with this one's session).</summary>
    private async Task ReleaseAsync(PeerWorker peer, List<ObjectId> ids)
    {
        try
        {
            var request = new ReleaseRequest();
            request.ObjectIds.AddRange(ids.Select(id => UnsafeByteOperations.UnsafeWrap(id.ToByteArray())));
            await peer.CallAsync(o => peer.Objects.ReleaseAsync(request, o), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RpcException or PeerUnreachableException)
        {
            // One line: the other worker being gone is expected, and its stack trace says nothing more.
            WorkerLog.RemoteReleaseFailed(_logger, ids.Count, peer.Record.Id, ex.Message.ReplaceLineEndings(" "));
        }
    }

    /// <summary>
    /// One session's borrows elsewhere, by id and by the worker each was made on (under its own lock): one ref may be
    /// borrowed through two workers (fetched from its holder's, borrowed by envelope on the one that stores it), and
    /// each borrow goes back where it was made.
    /// </summary>
    private sealed class SessionBorrows
    {
        public Dictionary<ObjectId, List<(PeerWorker Peer, int Count)>> Counts { get; } = [];

        public int Count => Counts.Values.Sum(held => held.Sum(h => h.Count));

        public void Add(ObjectId id, PeerWorker peer)
        {
            if (!Counts.TryGetValue(id, out var held))
            {
                Counts[id] = [(peer, 1)];
                return;
            }

            var at = held.FindIndex(h => ReferenceEquals(h.Peer, peer));
            if (at < 0)
            {
                held.Add((peer, 1));
            }
            else
            {
                held[at] = (peer, held[at].Count + 1);
            }
        }

        /// <summary>Takes one borrow of <paramref name="id"/>, from whichever worker it was made on.</summary>
        public bool TryTake(ObjectId id, out PeerWorker peer)
        {
            if (!Counts.TryGetValue(id, out var held))
            {
                peer = null!;
                return false;
            }

            var last = held.Count - 1;
            peer = held[last].Peer;
            if (held[last].Count == 1)
            {
                held.RemoveAt(last);
                if (held.Count == 0)
                {
                    Counts.Remove(id);
                }
            }
            else
            {
                held[last] = (peer, held[last].Count - 1);
            }

            return true;
        }
    }
}
