using System.Runtime.CompilerServices;

namespace RaySharing.Wire;

/// <summary>
/// The enums of <c>protos/raysharing/v1/common.proto</c> (Codec, HolderLifetime) mapped to the library's,
/// once for client and worker. Each generates its own copy of the proto types, so the mapping is
/// written over the wire numbers, which the proto fixes for good; each method's TWire is the
/// caller's generated enum.
/// </summary>
internal static class WireEnums
{
    // HolderLifetime: UNSPECIFIED = 0 (treated as DETACHED), DETACHED = 1, SESSION = 2.
    private const int LifetimeUnspecified = 0;
    private const int LifetimeDetached = 1;
    private const int LifetimeSession = 2;

    /// <summary>The proto codec of <paramref name="codec"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Not one of the defined codecs.</exception>
    public static TWire CodecToWire<TWire>(ObjectCodec codec)
        where TWire : struct, Enum =>
        IsDefined(codec)
            ? FromNumber<TWire>((int)codec)
            : throw new ArgumentOutOfRangeException(nameof(codec), codec, "Codec must be Xlang, Raw or Arrow.");

    /// <summary>The codec a proto codec names; false for CODEC_UNSPECIFIED and numbers this version does not know.</summary>
    public static bool TryCodecFromWire<TWire>(TWire wire, out ObjectCodec codec)
        where TWire : struct, Enum
    {
        // CODEC_XLANG = 1, CODEC_RAW = 2, CODEC_ARROW = 3: ObjectCodec uses the same numbers.
        codec = (ObjectCodec)ToNumber(wire);
        return IsDefined(codec);
    }

    /// <summary>The proto lifetime: SESSION for a session-lifetime holder, DETACHED otherwise.</summary>
    public static TWire LifetimeToWire<TWire>(bool session)
        where TWire : struct, Enum => FromNumber<TWire>(session ? LifetimeSession : LifetimeDetached);

    /// <summary>Whether a proto lifetime is SESSION (UNSPECIFIED means DETACHED); false for numbers this version does not know.</summary>
    public static bool TryLifetimeFromWire<TWire>(TWire wire, out bool session)
        where TWire : struct, Enum
    {
        var number = ToNumber(wire);
        session = number == LifetimeSession;
        return number is LifetimeUnspecified or LifetimeDetached or LifetimeSession;
    }

    private static bool IsDefined(ObjectCodec codec) => codec is ObjectCodec.Xlang or ObjectCodec.Raw or ObjectCodec.Arrow;

    // Generated proto enums are int-sized; BitCast throws if a caller's enum were not.
    private static TWire FromNumber<TWire>(int number)
        where TWire : struct, Enum => Unsafe.BitCast<int, TWire>(number);

    private static int ToNumber<TWire>(TWire wire)
        where TWire : struct, Enum => Unsafe.BitCast<TWire, int>(wire);
}
