using System.Globalization;

namespace RaySharing.Chaos.Roles;

/// <summary>
/// The single-line messages child roles print on stdout for the harness, one token per field:
/// <code>
/// PUTTING &lt;size&gt;                                            executor: about to put
/// PUT &lt;objectId&gt;                                            executor: the put was acknowledged
/// READY &lt;objectId&gt; &lt;size&gt; &lt;crc32&gt; &lt;envelope hex&gt;       executor: put and registered
/// READY &lt;envelope hex&gt; &lt;crc32&gt;                             holder-creator: put and registered
/// FETCHED &lt;count&gt;                                           driver: fetched the job's refs
/// OK &lt;objectId&gt; &lt;crc32&gt; | ERR &lt;objectId&gt; &lt;name&gt;            driver: one get (name: an exception type, HANG or UNTYPED:...)
/// ERR fetch|release &lt;name&gt;                                 driver: the fetch (or the release at the end) failed
/// DONE                                                      driver: finished
/// DISPOSE-FAILED &lt;name&gt; &lt;message&gt;                          executor, driver: disposing the client threw
/// FAILED &lt;name&gt; &lt;message&gt;                                  any role: gave up
/// </code>
/// The CRC-32 is computed by the putter over its own bytes, never copied from an envelope, so the
/// harness checks bytes end to end.
/// </summary>
internal static class ChildLines
{
    public const string Putting = "PUTTING";
    public const string Put = "PUT";
    public const string Ready = "READY";
    public const string Fetched = "FETCHED";
    public const string Ok = "OK";
    public const string Err = "ERR";
    public const string Done = "DONE";
    public const string Failed = "FAILED";
    public const string DisposeFailed = "DISPOSE-FAILED";

    /// <summary>What a driver prints in place of an object id when the fetch itself failed.</summary>
    public const string FetchTarget = "fetch";

    /// <summary>What a driver prints in place of an object id when releasing its refs failed.</summary>
    public const string ReleaseTarget = "release";

    public static void Say(string line) => Console.Out.WriteLine(line);

    public static string ExecutorReady(ObjectRef objectRef, uint crc) =>
        $"{Ready} {objectRef.Id} {objectRef.Size.ToString(CultureInfo.InvariantCulture)} {Infrastructure.Payload.Hex(crc)} {Convert.ToHexString(objectRef.ToEnvelopeBytes())}";
}

/// <summary>An executor's object as it announced it.</summary>
internal sealed record ExecutorObject(ObjectId Id, long Size, uint Crc, byte[] Envelope)
{
    public static ExecutorObject Parse(string line)
    {
        var parts = line.Split(' ');
        return parts.Length == 5 && parts[0] == ChildLines.Ready
            ? new ExecutorObject(ObjectId.Parse(parts[1]), long.Parse(parts[2], CultureInfo.InvariantCulture), Infrastructure.Payload.ParseHex(parts[3]), Convert.FromHexString(parts[4]))
            : throw new FormatException($"Not an executor READY line: {line}");
    }
}

/// <summary>The session-lifetime holder's object as its creator announced it.</summary>
internal sealed record CreatorObject(byte[] Envelope, uint Crc)
{
    public static CreatorObject Parse(string line)
    {
        var parts = line.Split(' ');
        return parts.Length == 3 && parts[0] == ChildLines.Ready
            ? new CreatorObject(Convert.FromHexString(parts[1]), Infrastructure.Payload.ParseHex(parts[2]))
            : throw new FormatException($"Not a holder-creator READY line: {line}");
    }
}
