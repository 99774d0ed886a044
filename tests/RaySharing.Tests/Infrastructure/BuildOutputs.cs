using RaySharing.Testing;

namespace RaySharing.Tests.Infrastructure;

/// <summary>Where the other projects' build outputs are, and how to start them as child processes.</summary>
internal static class BuildOutputs
{
    // AppContext.BaseDirectory is <repo>/tests/RaySharing.Tests/bin/<configuration>/<framework>/.
    private static readonly DirectoryInfo Framework = new(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));

    /// <summary>The repository's root folder.</summary>
    public static string RepositoryRoot { get; } = Framework.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;

    /// <summary>The path of another project's assembly in the same configuration and framework as the tests.</summary>
    public static string AssemblyPath(string projectDirectory, string assemblyName)
    {
        var path = Path.Combine(RepositoryRoot, projectDirectory, "bin", Framework.Parent!.Name, Framework.Name, assemblyName + ".dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"Build output not found; build the solution first: {path}");
    }

    /// <summary>Starts <c>dotnet assembly.dll arguments</c> for a project built next to the tests.</summary>
    public static ChildProcess Start(string projectDirectory, string assemblyName, params string[] arguments) =>
        ChildProcess.StartAssembly(assemblyName, AssemblyPath(projectDirectory, assemblyName), arguments);
}
