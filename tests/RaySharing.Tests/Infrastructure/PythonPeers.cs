using RaySharing.Testing;

namespace RaySharing.Tests.Infrastructure;

/// <summary>
/// The Python client (clients/python) run by Debian's python3 from the repository, with the stubs that
/// generate-stubs.sh made from protos/: its unittest suite, and tests/peer.py as a peer process.
/// </summary>
internal static class PythonPeers
{
    public const string Interpreter = "/usr/bin/python3";

    /// <summary>The package's directory: clients/python in the repository.</summary>
    public static string PackageDirectory { get; } = Path.Combine(BuildOutputs.RepositoryRoot, "clients", "python");

    /// <summary>The variables every Python child gets: the package on its path, no bytecode written into the repository.</summary>
    public static IReadOnlyDictionary<string, string> Environment(IReadOnlyDictionary<string, string>? more = null)
    {
        AssertReady();
        var environment = new Dictionary<string, string>
        {
            ["PYTHONPATH"] = PackageDirectory,
            ["PYTHONDONTWRITEBYTECODE"] = "1",
            ["PYTHONUNBUFFERED"] = "1",
        };
        foreach (var (name, value) in more ?? new Dictionary<string, string>())
        {
            environment[name] = value;
        }

        return environment;
    }

    /// <summary>Starts tests/peer.py in <paramref name="mode"/> (see its docstring for the modes and the lines they print).</summary>
    public static ChildProcess StartPeer(string name, string mode, params string[] arguments) =>
        ChildProcess.StartProgram(name, Interpreter, Environment(), [Path.Combine(PackageDirectory, "tests", "peer.py"), mode, .. arguments]);

    /// <summary>Runs python3 with <paramref name="arguments"/> to completion: its exit code and all it printed (stdout, then stderr).</summary>
    /// <exception cref="TimeoutException">It did not finish within <paramref name="timeout"/> (it is killed).</exception>
    public static Task<(int ExitCode, string Output)> RunAsync(IReadOnlyDictionary<string, string> environment, TimeSpan timeout, params string[] arguments) =>
        ExternalProgram.RunAsync(Interpreter, PackageDirectory, arguments, timeout, Environment(environment));

    private static void AssertReady()
    {
        if (!File.Exists(Interpreter))
        {
            throw new InvalidOperationException($"{Interpreter} is missing: install Debian's python3 with python3-grpcio, python3-protobuf and python3-msgpack (test.sh does).");
        }

        if (!File.Exists(Path.Combine(PackageDirectory, "raysharing", "v1", "objects_pb2_grpc.py")))
        {
            throw new InvalidOperationException($"The Python client's stubs are not generated: run {Path.Combine(PackageDirectory, "generate-stubs.sh")} (test.sh does).");
        }
    }
}
