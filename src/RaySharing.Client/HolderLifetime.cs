namespace RaySharing;

/// <summary>How long a holder lives.</summary>
public enum HolderLifetime
{
    /// <summary>Until it is killed, whatever happens to the session that created it.</summary>
    Detached = 1,

    /// <summary>Until it is killed or the session that created it ends (closed, crashed, lease lapsed).</summary>
    Session = 2,
}
