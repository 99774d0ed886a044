using RaySharing.Wire;
using System.Text;
using System.Text.Json;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>
/// Reads the golden vectors of <c>protos/vectors</c>: <c>NAME.hex</c> (bytes as hex, whitespace and
/// <c>#</c> comments allowed) and <c>NAME.json</c> (the decoded value, fields by name).
/// </summary>
internal static class Vectors
{
    public static string Directory { get; } = Path.Combine(AppContext.BaseDirectory, "vectors");

    /// <summary>Envelopes that must encode to exactly their bytes and decode to exactly their value.</summary>
    public static IReadOnlyList<string> ValidNames => Names("*.json", name => !name.StartsWith("compat-", StringComparison.Ordinal));

    /// <summary>Bytes a reader must reject.</summary>
    public static IReadOnlyList<string> InvalidNames => Names("invalid-*.hex", _ => true);

    public static TheoryData<string> Valid => [.. ValidNames];

    /// <summary>Envelopes a reader must accept although a writer never produces them (decode only).</summary>
    public static TheoryData<string> Compatible => [.. Names("compat-*.json", _ => true)];

    public static TheoryData<string> Invalid => [.. InvalidNames];

    public static byte[] ReadBytes(string name)
    {
        var hex = new StringBuilder();
        foreach (var line in File.ReadAllLines(Path.Combine(Directory, name + ".hex")))
        {
            var comment = line.IndexOf('#', StringComparison.Ordinal);
            foreach (var c in comment < 0 ? line : line[..comment])
            {
                if (!char.IsWhiteSpace(c))
                {
                    hex.Append(c);
                }
            }
        }

        return Convert.FromHexString(hex.ToString());
    }

    public static RefEnvelope ReadValue(string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Directory, name + ".json")));
        var root = json.RootElement;
        Assert.Equal(RefEnvelope.CurrentVersion, root.GetProperty("version").GetInt32());
        var owner = root.GetProperty("owner");
        var location = root.GetProperty("location");
        var codecName = root.GetProperty("codec").GetString()!;
        Assert.True(CodecNames.TryParse(codecName, out var codec), $"{name}.json: unknown codec '{codecName}'");
        var tag = root.GetProperty("integrity_tag");
        return new RefEnvelope
        {
            ObjectId = ObjectId.Parse(root.GetProperty("object_id").GetString()!),
            Owner = new ObjectOwner(
                (OwnerKind)owner.GetProperty("kind").GetInt32(),
                owner.GetProperty("namespace").GetString()!,
                owner.GetProperty("name").GetString()!,
                ObjectId.Parse(owner.GetProperty("incarnation").GetString()!)),
            Location = new WorkerLocation(
                location.GetProperty("address").GetString()!,
                ObjectId.Parse(location.GetProperty("worker_id").GetString()!)),
            Size = root.GetProperty("size").GetInt64(),
            Codec = codec,
            TypeName = root.GetProperty("type_name").GetString()!,
            Checksum = root.GetProperty("checksum").GetUInt32(),
            IntegrityTag = tag.ValueKind == JsonValueKind.Null ? null : Convert.FromHexString(tag.GetString()!),
        };
    }

    private static List<string> Names(string pattern, Func<string, bool> include)
    {
        var names = System.IO.Directory.GetFiles(Directory, pattern)
            .Select(path => Path.GetFileNameWithoutExtension(path))
            .Where(include)
            .Order(StringComparer.Ordinal)
            .ToList();
        // An empty theory would pass silently if the vectors were not copied to the output.
        Assert.NotEmpty(names);
        return names;
    }
}
