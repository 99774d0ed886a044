namespace RaySharing.Wire.Channel;

/// <summary>
/// The operation of a channel frame (protos/CHANNEL.md, "Ops"). A response carries its request's op with
/// <see cref="ChannelOps.ResponseBit"/> set. Values are never renumbered or reused.
/// </summary>
internal enum ChannelOp : byte
{
    /// <summary>Binds the connection to a session; must be the first request.</summary>
    Hello = 1,

    /// <summary>Stores a small object whose bytes travel inline in the payload.</summary>
    Put = 2,

    /// <summary>Reads a small object whose bytes come back inline in the payload.</summary>
    Get = 3,

    /// <summary>Borrows refs for the session.</summary>
    Borrow = 4,

    /// <summary>Releases refs the session borrowed.</summary>
    Release = 5,

    /// <summary>Reads an object's bytes as a response body, authorised by a ticket.</summary>
    BulkGet = 6,

    /// <summary>Writes an object's bytes as a request body, authorised by a ticket.</summary>
    BulkPut = 7,

    /// <summary>Answers at once; its payload comes back unchanged.</summary>
    Ping = 8,

    /// <summary>Pins an object of a session that maps the worker's shared memory; says where its bytes are.</summary>
    Pin = 9,

    /// <summary>Drops pins the session holds.</summary>
    Unpin = 10,

    /// <summary>Looks a holder up by name (holders.proto's <c>Get</c>).</summary>
    HolderGet = 11,

    /// <summary>Appends refs to a holder's key (holders.proto's <c>Register</c>).</summary>
    Register = 12,

    /// <summary>Reads one page of a holder's key (holders.proto's <c>Fetch</c>); the session borrows what it returns.</summary>
    Fetch = 13,

    /// <summary>
    /// Server to client only, with request id 0 or the offending request's id: the connection is broken
    /// and the server closes it after this frame (the GOAWAY of HTTP/2).
    /// </summary>
    ConnectionError = 0xFF,
}

/// <summary>Bits of the frame header's flags byte and values of its status field.</summary>
internal static class ChannelOps
{
    /// <summary>Set in the op of every response.</summary>
    public const byte ResponseBit = 0x80;

    /// <summary>Flag: a raw body follows this frame's payload; the payload starts with its u64 length.</summary>
    public const byte FlagBody = 0x01;

    /// <summary>The flags a version 1 peer understands; any other bit set is a protocol error.</summary>
    public const byte KnownFlags = FlagBody;

    /// <summary>Status of a successful response (and of every request).</summary>
    public const ushort StatusOk = 0;

    /// <summary>Status of a failed request; its payload is an error array and the connection stays usable.</summary>
    public const ushort StatusFailed = 1;

    /// <summary>Status of a <see cref="ChannelOp.ConnectionError"/> frame; the server closes the connection after it.</summary>
    public const ushort StatusConnectionError = 2;

    /// <summary>The response op for a request op.</summary>
    public static byte Response(ChannelOp op) => (byte)((byte)op | ResponseBit);

    /// <summary>Whether a request op is one of version 1 (the transport answers others with <c>UNIMPLEMENTED</c>).</summary>
    public static bool IsKnownRequest(byte op) => op is >= (byte)ChannelOp.Hello and <= (byte)ChannelOp.Fetch;
}
