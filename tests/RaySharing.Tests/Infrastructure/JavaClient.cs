using RaySharing.Testing;

namespace RaySharing.Tests.Infrastructure;

/// <summary>Starts programs of the Java client (clients/java), built by clients/java/build.sh with Debian's JDK and jars.</summary>
internal static class JavaClient
{
    /// <summary>The file build.sh writes: Debian's jars and the compiled classes, as one classpath.</summary>
    public static string ClasspathFile { get; } = Path.Combine(BuildOutputs.RepositoryRoot, "clients", "java", "build", "classpath.txt");

    /// <summary>Starts <c>java -cp … mainClass arguments</c>.</summary>
    /// <exception cref="FileNotFoundException">The Java client is not built.</exception>
    public static ChildProcess Start(string name, string mainClass, params string[] arguments)
    {
        if (!File.Exists(ClasspathFile))
        {
            throw new FileNotFoundException($"The Java client is not built ({ClasspathFile} is missing): run clients/java/build.sh (test.sh does).");
        }

        // C1 only and the serial collector: a short-lived JVM starts faster and takes less of a 2-core machine.
        string[] jvm = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m", "-cp", File.ReadAllText(ClasspathFile).Trim(), mainClass];
        return ChildProcess.StartProgram(name, "java", [.. jvm, .. arguments]);
    }
}
