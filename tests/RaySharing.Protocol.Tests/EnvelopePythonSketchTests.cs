using RaySharing.Wire;
using System.Diagnostics;
using Xunit;

namespace RaySharing.Protocol.Tests;

/// <summary>
/// The Python reader in ENVELOPE.md is part of the contract: run as written, with Debian's python3 and
/// python3-msgpack (test.sh installs them), it must accept every valid vector as its JSON and reject every
/// invalid one.
/// </summary>
public sealed class EnvelopePythonSketchTests
{
    // Runs the sketch (its example included) and prints one PASS or FAIL line per vector.
    private const string Runner = """
        import json, os, re, runpy, sys

        decode = runpy.run_path("sketch.py", run_name="sketch")["decode_envelope"]
        failures = 0
        for file in sorted(os.listdir("protos/vectors")):
            if not file.endswith(".hex"):
                continue
            name = file[:-4]
            text = open(os.path.join("protos/vectors", file), encoding="utf-8").read()
            data = bytes.fromhex("".join(re.sub(r"#.*", "", text).split()))
            try:
                decoded, error = decode(data), None
            except ValueError as e:
                decoded, error = None, e
            if name.startswith("invalid-"):
                ok = error is not None
                detail = "rejected: %s" % error if ok else "accepted an invalid envelope: %s" % decoded
            else:
                expected = json.load(open(os.path.join("protos/vectors", name + ".json"), encoding="utf-8"))
                expected.pop("description", None)
                ok = error is None and decoded == expected
                detail = "decoded as its JSON" if ok else ("raised %r" % error if error else "decoded %s" % decoded)
            print("PASS" if ok else "FAIL", name, detail)
            failures += not ok
        sys.exit(1 if failures else 0)
        """;

    [Fact]
    public async Task PythonSketch_EveryVector_AcceptsValidAsItsJsonAndRejectsInvalid()
    {
        DebianPython.AssertInstalled();
        var work = Directory.CreateTempSubdirectory("raysharing-sketch-");
        try
        {
            var vectors = Directory.CreateDirectory(Path.Combine(work.FullName, "protos", "vectors"));
            var names = new List<string>();
            foreach (var file in Directory.GetFiles(Vectors.Directory))
            {
                File.Copy(file, Path.Combine(vectors.FullName, Path.GetFileName(file)));
                if (file.EndsWith(".hex", StringComparison.Ordinal))
                {
                    names.Add(Path.GetFileNameWithoutExtension(file));
                }
            }

            await File.WriteAllTextAsync(Path.Combine(work.FullName, "sketch.py"), ExtractSketch());
            await File.WriteAllTextAsync(Path.Combine(work.FullName, "runner.py"), Runner);

            var (exitCode, output) = await DebianPython.RunAsync(work.FullName, ["runner.py"], TimeSpan.FromSeconds(60));

            Assert.DoesNotContain("No module named 'msgpack'", output);
            Assert.True(exitCode == 0, $"The sketch failed on some vectors:\n{output}");
            // Every vector was run: a runner that saw none cannot pass.
            Assert.All(names, name => Assert.Contains($"PASS {name} ", output));
            Assert.Contains("PASS invalid-version-true ", output);
            Assert.Contains("PASS compat-extra-fields decoded as its JSON", output);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>The one python block of ENVELOPE.md's "Decoding in Python" section.</summary>
    private static string ExtractSketch()
    {
        var text = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "ENVELOPE.md"));
        var section = text.IndexOf("## Decoding in Python", StringComparison.Ordinal);
        Assert.True(section >= 0, "ENVELOPE.md has no \"Decoding in Python\" section.");
        const string fence = "```python\n";
        var start = text.IndexOf(fence, section, StringComparison.Ordinal) + fence.Length;
        var end = text.IndexOf("```", start, StringComparison.Ordinal);
        Assert.True(start >= fence.Length && end > start, "The section has no python block.");
        return text[start..end];
    }
}
