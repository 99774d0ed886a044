using System.IO.Pipelines;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using RaySharing.Wire;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

/// <summary>
/// Gives every failed call of the worker's endpoints an <c>rs-reason</c>. The worker's own errors carry
/// one already; this adds one where the gRPC library ended the call with a bare status before or around
/// the handler: a message over the size limit, broken framing, an unknown method or encoding, a handler's
/// unexpected exception, the caller's own deadline (protos/ERRORS.md, "Errors without a worker reason").
/// </summary>
internal static class ErrorTrailers
{
    private const string StatusHeader = "grpc-status";
    private const string TimeoutHeader = "grpc-timeout";

    /// <summary>Wraps each endpoint the builder makes, including the library's "unimplemented method" ones.</summary>
    public static TBuilder WithErrorReasons<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder
    {
        builder.Add(endpoint =>
        {
            if (endpoint.RequestDelegate is { } inner)
            {
                endpoint.RequestDelegate = context => Invoke(inner, context);
            }
        });
        return builder;
    }

    private static Task Invoke(RequestDelegate inner, HttpContext context)
    {
        if (context.Request.Headers.ContainsKey(TimeoutHeader)
            && context.Features.Get<IHttpResponseBodyFeature>() is { } body)
        {
            // The library ends a call past the caller's deadline itself, by completing the response from
            // a timer; this is the one moment to add the reason then.
            context.Features.Set<IHttpResponseBodyFeature>(new ReasonBeforeComplete(context, body));
        }

        var task = inner(context);
        if (task.IsCompletedSuccessfully)
        {
            AddMissingReason(context);
            return Task.CompletedTask;
        }

        return AwaitAndAdd(task, context);
    }

    private static async Task AwaitAndAdd(Task task, HttpContext context)
    {
        await task.ConfigureAwait(false);
        AddMissingReason(context);
    }

    /// <summary>Adds <c>rs-reason</c> beside a non-OK <c>grpc-status</c> that has none, while the response can still take it.</summary>
    private static void AddMissingReason(HttpContext context)
    {
        // A call that failed before writing a message sends its status in the headers (trailers-only).
        var target = context.Response.HasStarted
            ? context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers
            : context.Response.Headers;
        if (target is null || target.IsReadOnly
            || !target.TryGetValue(StatusHeader, out var status)
            || !int.TryParse(status.ToString(), out var code)
            || code == (int)StatusCode.OK
            || target.ContainsKey(WireHeaders.Reason))
        {
            return;
        }

        target[WireHeaders.Reason] = WorkerErrors.ReasonForBareStatus((StatusCode)code);
    }

    private sealed class ReasonBeforeComplete(HttpContext context, IHttpResponseBodyFeature inner) : IHttpResponseBodyFeature
    {
        public Stream Stream => inner.Stream;

        public PipeWriter Writer => inner.Writer;

        public void DisableBuffering() => inner.DisableBuffering();

        public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
            inner.SendFileAsync(path, offset, count, cancellationToken);

        public Task CompleteAsync()
        {
            AddMissingReason(context);
            return inner.CompleteAsync();
        }
    }
}
