using System.Diagnostics;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using System.Xml.Linq;
using RaySharing.Testing;
using Xunit;

namespace RaySharing.Packaging.Tests;

/// <summary>
/// The packages as users take them: pack the solution into a folder feed, make a fresh console app outside
/// the repository (so none of its build settings apply), add RaySharing.Client from the feed, install the
/// raysharing-worker tool from the feed, and put and get through a worker the tool started.
/// </summary>
public sealed class PackagingTests
{
    // AppContext.BaseDirectory is <repo>/tests/RaySharing.Packaging.Tests/bin/<configuration>/<framework>/.
    private static readonly DirectoryInfo Framework = new(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
    private static readonly string RepositoryRoot = Framework.Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
    private static readonly string Configuration = Framework.Parent!.Name;

    private const string AppSource = """
        using RaySharing;

        // What a user writes after `dotnet add package RaySharing.Client`: connect, put, get.
        await using var client = await RaySharingClient.ConnectAsync(new RaySharingClientOptions { Address = new Uri(args[0]) });
        var data = new byte[3 << 20];
        new Random(42).NextBytes(data);
        var large = await client.PutAsync(data);
        var text = await client.PutAsync("hello from a package");
        var sameBytes = (await client.GetAsync(large)).AsSpan().SequenceEqual(data);
        var sameText = await client.GetAsync(text) == "hello from a package";
        Console.WriteLine(sameBytes && sameText ? $"roundtrip {data.Length}" : "MISMATCH");
        return sameBytes && sameText ? 0 : 1;
        """;

    [Fact]
    public async Task Packages_TakenAsAUserWould_ConsoleAppPutsAndGetsThroughTheWorkerTool()
    {
        var work = Directory.CreateTempSubdirectory("raysharing-packaging-");
        try
        {
            Assert.False(work.FullName.StartsWith(RepositoryRoot, StringComparison.Ordinal), "The app must live outside the repository, or its Directory.Build.props would apply.");
            // A version no earlier run used, so no package cache can answer in place of the feed.
            var version = "0.1.0-test." + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", CultureInfo.InvariantCulture);
            var feed = Path.Combine(work.FullName, "feed");
            var dotnet = new DotnetRunner(work.FullName);

            await dotnet.RunAsync(RepositoryRoot, TimeSpan.FromMinutes(4),
                "pack", Path.Combine(RepositoryRoot, "RaySharing.sln"), "-c", Configuration, "--no-build", "-o", feed, "-p:Version=" + version);
            foreach (var id in new[] { "RaySharing.Client", "RaySharing.Protocol", "RaySharing.Worker", "raysharing-worker" })
            {
                AssertPackage(Path.Combine(feed, $"{id}.{version}.nupkg"), id);
                AssertSymbols(Path.Combine(feed, $"{id}.{version}.snupkg"));
            }

            Assert.Equal("DotnetTool", PackageTypeOf(Path.Combine(feed, $"raysharing-worker.{version}.nupkg")));

            // The feed beside the user's usual ones; packages the machine already has come from its cache.
            await File.WriteAllTextAsync(Path.Combine(work.FullName, "nuget.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="raysharing-local" value="{feed}" />
                  </packageSources>
                  <fallbackPackageFolders>
                    <add key="machine-cache" value="{DotnetRunner.MachinePackageCache}" />
                  </fallbackPackageFolders>
                </configuration>
                """);
            var app = Path.Combine(work.FullName, "app");
            await dotnet.RunAsync(work.FullName, TimeSpan.FromMinutes(2), "new", "console", "-o", app, "--framework", "net10.0");
            await File.WriteAllTextAsync(Path.Combine(app, "Program.cs"), AppSource);
            await dotnet.RunAsync(app, TimeSpan.FromMinutes(4), "add", "package", "RaySharing.Client", "--version", version);
            await dotnet.RunAsync(app, TimeSpan.FromMinutes(4), "build", "-c", "Release");

            var tools = Path.Combine(work.FullName, "tools");
            await dotnet.RunAsync(work.FullName, TimeSpan.FromMinutes(3),
                "tool", "install", "--tool-path", tools, "--add-source", feed, "--version", version, "raysharing-worker");

            using var worker = ChildProcess.StartProgram("raysharing-worker", Path.Combine(tools, "raysharing-worker"), "--port", "0");
            var address = (await worker.WaitForLineAsync("listening ", TimeSpan.FromMinutes(1)))["listening ".Length..];

            var output = await dotnet.RunAsync(app, TimeSpan.FromMinutes(2), "run", "-c", "Release", "--no-build", "--", address);

            Assert.Contains($"roundtrip {3 << 20}", output, StringComparison.Ordinal);
            // Stopped as a service manager would: gracefully, exit 0.
            Assert.Equal(0, Kill(worker.Id, 15));
            Assert.Equal(0, await worker.WaitForExitCodeAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private static void AssertPackage(string path, string id)
    {
        Assert.True(File.Exists(path), $"{path} was not packed.");
        using var package = ZipFile.OpenRead(path);
        var metadata = Nuspec(package);
        string? Value(string name) => metadata.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value;
        Assert.Equal(id, Value("id"));
        Assert.Equal("MIT", Value("license"));
        Assert.Equal("README.md", Value("readme"));
        Assert.False(string.IsNullOrWhiteSpace(Value("description")), $"{id} has no description.");
        var repository = metadata.Elements().Single(e => e.Name.LocalName == "repository");
        Assert.Equal("git", repository.Attribute("type")?.Value);
        Assert.False(string.IsNullOrEmpty(repository.Attribute("commit")?.Value), $"{id} does not say which commit it was built from.");
        Assert.NotNull(package.GetEntry("README.md"));
        Assert.NotNull(package.GetEntry("LICENSE"));
    }

    private static void AssertSymbols(string path)
    {
        Assert.True(File.Exists(path), $"{path} was not packed.");
        using var symbols = ZipFile.OpenRead(path);
        Assert.Contains(symbols.Entries, e => e.FullName.EndsWith(".pdb", StringComparison.Ordinal));
    }

    private static string? PackageTypeOf(string path)
    {
        using var package = ZipFile.OpenRead(path);
        return Nuspec(package).Descendants().FirstOrDefault(e => e.Name.LocalName == "packageType")?.Attribute("name")?.Value;
    }

    private static XElement Nuspec(ZipArchive package)
    {
        var entry = package.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        using var stream = entry.Open();
        return XDocument.Load(stream).Root!.Elements().Single(e => e.Name.LocalName == "metadata");
    }
}

/// <summary>
/// Runs the dotnet CLI as a user's shell would: none of this test run's MSBuild variables, no build servers
/// left behind, packages restored into the test's own folder, every command bounded by a timeout.
/// </summary>
internal sealed class DotnetRunner(string workDirectory)
{
    /// <summary>The machine's NuGet package cache, used as a fallback folder so the test needs no download it has made before.</summary>
    public static string MachinePackageCache { get; } =
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>Runs <c>dotnet arguments</c> in <paramref name="directory"/>; returns its stdout, or fails with its output.</summary>
    public async Task<string> RunAsync(string directory, TimeSpan timeout, params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = directory,
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // `dotnet test` sets MSBuild variables that would point a nested CLI at this run's build.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(name);
        }

        start.Environment["NUGET_PACKAGES"] = Path.Combine(workDirectory, "packages");
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["UseSharedCompilation"] = "false";

        using var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start dotnet.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var bound = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"dotnet {string.Join(' ', arguments)} did not finish within {timeout.TotalMinutes:0.#} min.\n{Tail(await stdout)}");
        }

        var output = await stdout;
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', arguments)} exited {process.ExitCode}:\n{Tail(output)}\n{Tail(await stderr)}");
        return output;
    }

    private static string Tail(string text) => text.Length <= 4000 ? text : "…" + text[^4000..];
}
