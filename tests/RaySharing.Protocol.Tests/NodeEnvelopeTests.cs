using RaySharing.Testing;
using System.Text.RegularExpressions;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>
/// The Node package's envelope module (clients/node/envelope.mjs) against the golden vectors, by its own node:test suite
/// run in the repository's clients/node with the @msgpack/msgpack that <c>npm ci</c> installed from its lock file: valid
/// vectors decode to their JSON and encode to their exact bytes, compatible ones decode and re-encode as a writer would,
/// invalid ones are refused for the rule they break, limits hold at their edges.
/// </summary>
public sealed partial class NodeEnvelopeTests
{
    [Fact]
    public async Task NodePackage_GoldenVectorsAndLimits_NodeTestSuitePasses()
    {
        var node = ExternalProgram.FindOnPath("node");
        Assert.True(node is not null, "node is not on PATH: install Debian's nodejs and npm (test.sh does).");
        // The package runs where it is, not from a copy: npm ci installed its node_modules there.
        // The assembly is in <repo>/tests/RaySharing.Protocol.Tests/bin/<configuration>/<framework>/.
        var repository = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."));
        var package = Path.Combine(repository, "clients", "node");
        Assert.True(File.Exists(Path.Combine(package, "envelope.mjs")), $"The Node package is not at {package}.");
        Assert.True(File.Exists(Path.Combine(package, "node_modules", "@msgpack", "msgpack", "package.json")),
            $"{package} has no node_modules/@msgpack/msgpack: run npm ci --prefix clients/node (test.sh does).");

        var (exitCode, output) = await ExternalProgram.RunAsync(node!, package, ["--test", "--test-reporter=tap"], TimeSpan.FromSeconds(60),
            new Dictionary<string, string> { ["RAYSHARING_VECTORS"] = Vectors.Directory }, unset: ["NODE_OPTIONS", "NODE_PATH"]);

        Assert.True(exitCode == 0, $"The Node envelope suite failed:\n{output}");
        var passed = PassCount().Match(output);
        Assert.True(passed.Success && int.Parse(passed.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0,
            $"The Node envelope suite ran no test:\n{output}");
        Assert.Matches(FailNone(), output);
        // Every vector was run by name: a suite that found none, or skipped some, cannot pass.
        var vectors = Directory.GetFiles(Vectors.Directory, "*.hex").Select(Path.GetFileNameWithoutExtension).ToList();
        Assert.NotEmpty(vectors);
        Assert.All(vectors, name => Assert.True(
            Regex.IsMatch(output, $@"^\s*ok \d+ - vector {Regex.Escape(name!)}\r?$", RegexOptions.Multiline),
            $"No passing test for vector {name} in the Node suite's output:\n{output}"));
    }

    [GeneratedRegex(@"^# pass (\d+)$", RegexOptions.Multiline)]
    private static partial Regex PassCount();

    [GeneratedRegex(@"^# fail 0$", RegexOptions.Multiline)]
    private static partial Regex FailNone();
}
