using RaySharing.Testing;
using System.Globalization;
using RaySharing;

// A second process for multi-process tests. It speaks on stdout in single lines the test waits for:
//   put --address A [--holder NAME [--session-holder]] [--key KEY] [--size N] [--hang]
//       puts N pseudo-random bytes (owned by the holder when given, else by this session), registers the
//       ref under KEY when given, prints "READY <envelope hex> <crc32 hex>", then exits, or with --hang
//       waits to be killed. With --session-holder it first creates the holder with session lifetime.
//   borrow --address A --envelope HEX
//       rebuilds the ref (a borrow), prints "BORROWED", and waits to be killed.
//   get --address A --envelope HEX
//       rebuilds the ref from the envelope, gets the bytes and prints "GOT <size> <crc32 hex>".
//   lease --address A --envelope HEX
//       rebuilds the ref, takes a lease on its bytes, prints "LEASED <zero-copy true|false> <crc32 hex>",
//       and waits to be killed holding it.
//   stall-put --address A --size N [--holder NAME]
//       starts a put of N bytes from a stream that stalls after its first MiB, prints "STALLED", and waits
//       to be killed mid-transfer.
//   stall-bulk-put --address A --size N [--holder NAME]
//       as stall-put, but without shared memory: the put goes over the channel as a BULK_PUT body (the size must be
//       over the unary limit), which stalls after its first MiB; prints "STALLED <uses-channel true|false>".
// Failures print "ERROR <exception type> <message>" and exit 1.
var mode = args.Length > 0 ? args[0] : string.Empty;
string? Arg(string name)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}

using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
try
{
    var address = Arg("--address") ?? throw new ArgumentException("--address is required");
    // stall-bulk-put wants the channel's bulk body, which a same-host client with shared memory would not use.
    var options = new RaySharingClientOptions { Address = new Uri(address), ClientName = "test-peer", UseSharedMemory = mode != "stall-bulk-put" };
    await using var client = await RaySharingClient.ConnectAsync(options, timeout.Token);
    switch (mode)
    {
        case "put":
        {
            var size = int.Parse(Arg("--size") ?? "1024", CultureInfo.InvariantCulture);
            var data = new byte[size];
            new Random(size).NextBytes(data);
            var holderName = Arg("--holder");
            var holder = holderName is null ? null
                : args.Contains("--session-holder") ? await client.GetOrCreateHolderAsync(holderName, HolderLifetime.Session, cancellationToken: timeout.Token)
                : await client.GetHolderAsync(holderName, cancellationToken: timeout.Token);
            var objectRef = await client.PutAsync(data, holder, timeout.Token);
            if (Arg("--key") is { } key)
            {
                await holder!.RegisterAsync(key, [objectRef], timeout.Token);
            }

            Console.WriteLine($"READY {Convert.ToHexString(objectRef.ToEnvelopeBytes())} {objectRef.Checksum:x8}");
            if (args.Contains("--hang"))
            {
                await Task.Delay(Timeout.Infinite, timeout.Token);
            }

            return 0;
        }

        case "get":
        {
            var envelope = Convert.FromHexString(Arg("--envelope") ?? throw new ArgumentException("--envelope is required"));
            await using var objectRef = await client.BorrowFromEnvelopeAsync<byte[]>(envelope, timeout.Token);
            var bytes = await client.GetAsync(objectRef, timeout.Token);
            Console.WriteLine($"GOT {bytes.Length} {System.IO.Hashing.Crc32.HashToUInt32(bytes):x8}");
            return 0;
        }

        case "lease":
        {
            var envelope = Convert.FromHexString(Arg("--envelope") ?? throw new ArgumentException("--envelope is required"));
            var objectRef = await client.BorrowFromEnvelopeAsync(envelope, timeout.Token);
            var lease = await client.GetLeaseAsync(objectRef, timeout.Token);
            var crc = new System.IO.Hashing.Crc32();
            foreach (var segment in lease.Bytes)
            {
                crc.Append(segment.Span);
            }

            Console.WriteLine($"LEASED {lease.IsZeroCopy.ToString().ToLowerInvariant()} {crc.GetCurrentHashAsUInt32():x8}");
            await Task.Delay(Timeout.Infinite, timeout.Token);
            return 0;
        }

        case "stall-put":
        case "stall-bulk-put":
        {
            var size = long.Parse(Arg("--size") ?? "4194304", CultureInfo.InvariantCulture);
            var holder = Arg("--holder") is { } name ? await client.GetHolderAsync(name, cancellationToken: timeout.Token) : null;
            var stalled = new TaskCompletionSource();
            var put = client.PutEncodedAsync(new StallingStream(1 << 20, stalled), size, owner: holder, cancellationToken: timeout.Token);
            await stalled.Task.WaitAsync(timeout.Token);
            Console.WriteLine(mode == "stall-put" ? "STALLED" : $"STALLED {client.UsesChannel.ToString().ToLowerInvariant()}");
            await put;
            return 0;
        }

        case "borrow":
        {
            var envelope = Convert.FromHexString(Arg("--envelope") ?? throw new ArgumentException("--envelope is required"));
            await client.BorrowFromEnvelopeAsync(envelope, timeout.Token);
            Console.WriteLine("BORROWED");
            await Task.Delay(Timeout.Infinite, timeout.Token);
            return 0;
        }

        default:
            throw new ArgumentException($"unknown mode '{mode}'");
    }
}
catch (Exception ex)
{
    Console.WriteLine($"ERROR {ex.GetType().Name} {ex.Message.ReplaceLineEndings(" ")}");
    return 1;
}
