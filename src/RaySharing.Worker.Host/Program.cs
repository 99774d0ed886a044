using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using RaySharing.Worker;

// The worker as a process: "--port 7480 --listen 127.0.0.1 --capacity-mb 1024 --advertise http://host:7480".
// It prints "listening <address>" on stdout once ready, so a parent process can wait for that line.
var options = new WorkerOptions();
for (var i = 0; i < args.Length; i++)
{
    string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
    switch (args[i])
    {
        case "--port": options.Port = int.Parse(Next(), CultureInfo.InvariantCulture); break;
        case "--listen": options.ListenAddress = Next(); break;
        case "--advertise": options.AdvertisedAddress = Next(); break;
        case "--capacity-mb": options.StoreCapacityBytes = long.Parse(Next(), CultureInfo.InvariantCulture) << 20; break;
        case "--lease-ms": options.DefaultLease = TimeSpan.FromMilliseconds(int.Parse(Next(), CultureInfo.InvariantCulture)); break;
        default:
            Console.Error.WriteLine($"Unknown argument '{args[i]}'. Arguments: --port N --listen IP --advertise URI --capacity-mb N --lease-ms N");
            return 2;
    }
}

await using var worker = await RaySharingWorker.StartAsync(options, logging => logging.AddSimpleConsole(c => c.SingleLine = true).SetMinimumLevel(LogLevel.Information));
Console.Out.WriteLine($"listening {worker.Address}");
Console.Out.Flush();

// SIGTERM (kill, systemd, container stop) and Ctrl+C both stop the worker gracefully: sessions end, objects are freed.
using var stop = new CancellationTokenSource();
void OnSignal(PosixSignalContext context)
{
    context.Cancel = true;
    stop.Cancel();
}

using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
try
{
    await Task.Delay(Timeout.Infinite, stop.Token);
}
catch (OperationCanceledException)
{
}

return 0;
