using Grpc.Core;
using RaySharing.Benchmarks.V1;

namespace RaySharing.Benchmarks;

/// <summary>The baseline: the cheapest unary call the server can answer, returning the request as is.</summary>
internal sealed class EchoService : Echo.EchoBase
{
    public override Task<EchoMessage> Echo(EchoMessage request, ServerCallContext context) => Task.FromResult(request);
}
