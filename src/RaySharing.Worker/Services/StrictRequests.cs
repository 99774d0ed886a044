using Grpc.Core;
using RaySharing.Protocol.V1;
using RaySharing.Worker.Ownership;

namespace RaySharing.Worker.Services;

/// <summary>
/// Binds the worker's services with request deserializers that answer a malformed protobuf message with
/// <c>INVALID_ARGUMENT</c> / <c>INVALID_REQUEST</c>. Otherwise the library would answer <c>UNKNOWN</c>: it
/// reads the message before any handler or interceptor runs, and takes a parser's exception for a fault.
/// </summary>
/// <remarks>
/// Each service names its overload with <see cref="BindServiceMethodAttribute"/>; the library then calls it
/// in place of the generated <c>BindService</c>, with the same methods and handlers.
/// </remarks>
internal static class StrictRequests
{
    public static void Bind(ServiceBinderBase binder, Sessions.SessionsBase service) => Sessions.BindService(new Binder(binder), service);

    public static void Bind(ServiceBinderBase binder, Holders.HoldersBase service) => Holders.BindService(new Binder(binder), service);

    public static void Bind(ServiceBinderBase binder, Objects.ObjectsBase service) => Objects.BindService(new Binder(binder), service);

    private static Method<TRequest, TResponse> Strict<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        var parse = method.RequestMarshaller.ContextualDeserializer;
        var marshaller = new Marshaller<TRequest>(method.RequestMarshaller.ContextualSerializer, context =>
        {
            try
            {
                return parse(context);
            }
            catch (Exception ex) when (ex is not OperationCanceledException and not RpcException)
            {
                throw WorkerErrors.InvalidRequest($"The request is not a valid {typeof(TRequest).Name} message: {ex.Message}");
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, method.ResponseMarshaller);
    }

    private sealed class Binder(ServiceBinderBase inner) : ServiceBinderBase
    {
        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
            inner.AddMethod(Strict(method), handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            inner.AddMethod(Strict(method), handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            inner.AddMethod(Strict(method), handler);

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            inner.AddMethod(Strict(method), handler);
    }
}
