using Xunit;

namespace RaySharing.Tests.Infrastructure;

/// <summary>
/// A fact that needs <see cref="NetworkHosts"/> (root and iproute2 on Linux). Where they are unavailable it is
/// skipped with the reason, except on CI (<c>CI=true</c>), where it runs and fails with the reason when it creates
/// its fixture: CI runs as root and must never skip these silently.
/// </summary>
/// <remarks>
/// The skip is decided at discovery because xunit 2.9 cannot skip a running test: its <c>SkipException</c> and
/// <c>$XunitDynamicSkip$</c> messages are honoured only by xunit v3 runners, and a v2 runner reports them as failures.
/// </remarks>
public sealed class NetworkHostsFactAttribute : FactAttribute
{
    public NetworkHostsFactAttribute()
    {
        if (NetworkHosts.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
