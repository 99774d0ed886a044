using Google.Protobuf;
using Grpc.Core;
using RaySharing.Wire;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Ownership;
using RaySharing.Worker.Storage;
using RaySharing.Worker.Transport.Channel;

namespace RaySharing.Worker.Services;

[BindServiceMethod(typeof(StrictRequests), nameof(StrictRequests.Bind))]
internal sealed class SessionsService(OwnershipGraph graph, ObjectStore store, ChannelHost channel, WorkerOptions options) : Sessions.SessionsBase
{
    public override Task<OpenSessionReply> Open(OpenSessionRequest request, ServerCallContext context)
    {
        if (graph.Identity.Address.Length == 0)
        {
            // Envelopes must say where their objects live; until the server knows its address, no session.
            throw WorkerErrors.Starting();
        }

        // Free text, but it goes into the worker's log: the name rules keep it to one printable line.
        if (request.ClientName.Length > 0 && NameRules.Problem(request.ClientName, "client name") is { } problem)
        {
            throw WorkerErrors.InvalidRequest(problem);
        }

        var session = graph.OpenSession(request.Namespace, TimeSpan.FromMilliseconds(request.LeaseMillis), request.ClientName);
        return Task.FromResult(new OpenSessionReply
        {
            SessionId = UnsafeByteOperations.UnsafeWrap(session.Id.ToByteArray()),
            LeaseMillis = (uint)session.Lease.TotalMilliseconds,
            WorkerId = UnsafeByteOperations.UnsafeWrap(graph.Identity.WorkerId.ToByteArray()),
            WorkerAddress = graph.Identity.Address,
            SessionToken = UnsafeByteOperations.UnsafeWrap(session.Token.ToByteArray()),
            MaxUnaryObjectBytes = (uint)options.MaxUnaryObjectBytes,
            SharedMemory = store.Arena.IsShared
                ? new SharedMemoryOffer { WorkerPid = (uint)Environment.ProcessId, ArenaFd = store.Arena.FileDescriptor, ArenaBytes = (ulong)store.Arena.Length }
                : null,
            Channel = channel.Offer(graph.Identity.Address, session.ChannelKey),
        });
    }

    public override Task<AttachSharedMemoryReply> AttachSharedMemory(AttachSharedMemoryRequest request, ServerCallContext context)
    {
        graph.AttachSharedMemory(context.SessionToken(), request.Secret.Span);
        return Task.FromResult(new AttachSharedMemoryReply());
    }

    public override Task<KeepAliveReply> KeepAlive(KeepAliveRequest request, ServerCallContext context) =>
        Task.FromResult(new KeepAliveReply { LeaseMillis = (uint)graph.KeepAlive(context.SessionToken()).TotalMilliseconds });

    public override Task<CloseSessionReply> Close(CloseSessionRequest request, ServerCallContext context)
    {
        graph.CloseSession(context.SessionToken());
        return Task.FromResult(new CloseSessionReply());
    }
}
