using System.Diagnostics;
using RaySharing.Chaos;
using RaySharing.Chaos.Chaos;
using RaySharing.Chaos.Infrastructure;
using RaySharing.Chaos.Load;
using RaySharing.Chaos.Roles;
using RaySharing.Testing;

// One executable, several roles: the harnesses (chaos, cluster-chaos, load) start the worker and the child roles
// (executor, holder-creator, driver) as separate processes of this same program, so that killing
// one is a real process crash.
CommandLine commandLine;
try
{
    commandLine = CommandLine.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    Console.Error.WriteLine(CommandLine.Usage);
    return 2;
}

var isChild = commandLine.Role is "executor" or "holder-creator" or "driver";
if (isChild)
{
    ChildRole.ExitWithParent();
}
else
{
    ChildProcess.KillAllOnExit();
}

try
{
    return commandLine.Role switch
    {
        "chaos" => await ChaosHarness.RunAsync(commandLine),
        "cluster-chaos" => await ClusterChaosHarness.RunAsync(commandLine),
        "load" => await LoadHarness.RunAsync(commandLine),
        "executor" => await Executor.RunAsync(commandLine),
        "holder-creator" => await HolderCreator.RunAsync(commandLine),
        "driver" => await Driver.RunAsync(commandLine),
        _ => throw new UnreachableException($"CommandLine.Parse accepted role '{commandLine.Role}'."),
    };
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine($"{commandLine.Role}: error: {ex.Message}");
    Console.Error.WriteLine(CommandLine.Usage);
    return 2;
}
catch (Exception ex) when (isChild)
{
    // One line the harness can read: how this child gave up.
    ChildLines.Say($"{ChildLines.Failed} {Outcome.Of(ex).Token} {ex.Message.ReplaceLineEndings(" ")}");
    return 1;
}
catch (Exception ex)
{
    // A harness that cannot finish its run fails it, with the reason, instead of crashing.
    Console.Error.WriteLine($"{commandLine.Role}: FAILED: {ex}");
    return 1;
}
finally
{
    ChildProcess.KillAll();
}
