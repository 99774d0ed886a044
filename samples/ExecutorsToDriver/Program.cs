using System.Diagnostics;
using ExecutorsToDriver;
using RaySharing;

// One executable, three roles: the master (default) starts the executors and the driver as
// separate processes of this same program, so objects really cross process boundaries.
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

try
{
    return commandLine.Mode switch
    {
        "run" => await Master.RunAsync(commandLine),
        "executor" => await Executor.RunAsync(commandLine),
        "driver" => await Driver.RunAsync(commandLine),
        _ => throw new UnreachableException($"CommandLine.Parse accepted mode '{commandLine.Mode}'."),
    };
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine($"{commandLine.Mode}: error: {ex.Message}");
    Console.Error.WriteLine(CommandLine.Usage);
    return 2;
}
catch (Exception ex) when (ex is RaySharingException or TimeoutException or OperationCanceledException)
{
    // Our own deadlines surface as OperationCanceledException; report them as the timeouts they are.
    var what = ex is OperationCanceledException ? "timed out" : ex.GetType().Name;
    Console.Error.WriteLine($"{commandLine.Mode}: FAILED ({what}): {ex.Message}");
    return 1;
}
