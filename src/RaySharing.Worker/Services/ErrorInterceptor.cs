using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Logging;
using RaySharing.Protocol;
using RaySharing.Worker.Diagnostics;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

/// <summary>Turns <see cref="WorkerException"/>s into gRPC statuses with the reason trailers of the protocol.</summary>
internal sealed class ErrorInterceptor(ILogger<ErrorInterceptor> logger) : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (Translate(ex, context) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (Translate(ex, context) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (Exception ex) when (Translate(ex, context) is { } rpc)
        {
            throw rpc;
        }
    }

    private RpcException? Translate(Exception exception, ServerCallContext context)
    {
        if (exception is WorkerException worker)
        {
            WorkerLog.CallFailed(logger, context.Method, worker.Reason, worker.Message);
            return worker.ToRpcException();
        }

        if (exception is EnvelopeFormatException envelope)
        {
            WorkerLog.CallFailed(logger, context.Method, ErrorReasons.InvalidEnvelope, envelope.Message);
            return WorkerErrors.InvalidEnvelope(envelope.Message).ToRpcException();
        }

        return null;
    }
}
