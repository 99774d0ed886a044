namespace RaySharing.Worker.Ownership;

/// <summary>One page of a fetch: the envelopes delivered (each borrowed by the session) and the key's length.</summary>
internal readonly record struct FetchPage(byte[][] Envelopes, int Total);
