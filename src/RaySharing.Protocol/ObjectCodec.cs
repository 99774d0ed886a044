namespace RaySharing;

/// <summary>How an object's bytes are to be read. The names match the envelope's codec strings.</summary>
public enum ObjectCodec
{
    /// <summary>Plain MessagePack (maps, arrays, strings, numbers, binary), readable by every language.</summary>
    Xlang = 1,

    /// <summary>Opaque bytes; read them as <c>byte[]</c> or <c>ReadOnlyMemory&lt;byte&gt;</c>.</summary>
    Raw = 2,

    /// <summary>An Arrow IPC stream, for tables.</summary>
    Arrow = 3,
}
