using Microsoft.Extensions.Options;
using RaySharing.Wire;

namespace RaySharing.Worker;

/// <summary>
/// Every range rule of <see cref="WorkerOptions"/>, in one place: <see cref="WorkerOptions.Validate"/>, the
/// options pipeline (ValidateOnStart) and the worker host's command line all ask it. Each failure names the
/// option. An option's own range is checked first; a rule between two options only when both are in range,
/// so one mistake gives one message.
/// </summary>
internal sealed class WorkerOptionsValidator : IValidateOptions<WorkerOptions>
{
    public ValidateOptionsResult Validate(string? name, WorkerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = Failures(options).Select(f => f.Message).ToList();
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    /// <summary>Every rule <paramref name="o"/> breaks, each naming its option.</summary>
    public static IEnumerable<OptionFailure> Failures(WorkerOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.SharedMemoryDirectory) || !Path.IsPathFullyQualified(o.SharedMemoryDirectory))
        {
            yield return new(nameof(o.SharedMemoryDirectory), $"{nameof(o.SharedMemoryDirectory)} must be an absolute path, such as /dev/shm; got '{o.SharedMemoryDirectory}'.");
        }

        if (o.ChannelSocketDirectory is null || (o.ChannelSocketDirectory.Length > 0 && !Path.IsPathFullyQualified(o.ChannelSocketDirectory)))
        {
            yield return new(nameof(o.ChannelSocketDirectory), $"{nameof(o.ChannelSocketDirectory)} must be an absolute path, such as /tmp, or empty for no Unix socket; got '{o.ChannelSocketDirectory}'.");
        }

        if (o.ChannelPort is < 0 or > 65535)
        {
            yield return new(nameof(o.ChannelPort), $"{nameof(o.ChannelPort)} must be 0 to 65535 (0 picks a free port); got {o.ChannelPort}.");
        }

        if (string.IsNullOrWhiteSpace(o.ListenAddress) || !System.Net.IPAddress.TryParse(o.ListenAddress, out _))
        {
            yield return new(nameof(o.ListenAddress), $"{nameof(o.ListenAddress)} must be an IP address, such as 127.0.0.1 or 0.0.0.0; got '{o.ListenAddress}'.");
        }

        if (o.Port is < 0 or > 65535)
        {
            yield return new(nameof(o.Port), $"{nameof(o.Port)} must be 0 to 65535 (0 picks a free port); got {o.Port}.");
        }

        if (o.Channel && o.ChannelPort != 0 && o.ChannelPort == o.Port)
        {
            yield return new(nameof(o.ChannelPort), $"{nameof(o.ChannelPort)} must differ from {nameof(o.Port)} (both are {o.Port}): the channel listens beside gRPC, on a port of its own.");
        }

        if (o.AdvertisedAddress is not null && !Uri.TryCreate(o.AdvertisedAddress, UriKind.Absolute, out _))
        {
            yield return new(nameof(o.AdvertisedAddress), $"{nameof(o.AdvertisedAddress)} must be an absolute URI, such as http://10.0.0.5:7480; got '{o.AdvertisedAddress}'.");
        }

        if (o.StoreCapacityBytes <= 0)
        {
            yield return new(nameof(o.StoreCapacityBytes), $"{nameof(o.StoreCapacityBytes)} must be positive; got {o.StoreCapacityBytes}.");
        }

        var minLease = Time(o.MinLease, nameof(o.MinLease));
        var maxLease = Time(o.MaxLease, nameof(o.MaxLease));
        var defaultLease = Time(o.DefaultLease, nameof(o.DefaultLease));
        var leaseCheck = Time(o.LeaseCheckInterval, nameof(o.LeaseCheckInterval));
        var streamIdle = Time(o.StreamIdleTimeout, nameof(o.StreamIdleTimeout));
        foreach (var failure in new[] { minLease, maxLease, defaultLease, leaseCheck, streamIdle })
        {
            if (failure is { } f)
            {
                yield return f;
            }
        }

        if (minLease is null && maxLease is null && o.MinLease > o.MaxLease)
        {
            yield return new(nameof(o.MinLease), $"{nameof(o.MinLease)} ({Ms(o.MinLease)}) must not exceed {nameof(o.MaxLease)} ({Ms(o.MaxLease)}).");
        }
        else if (minLease is null && maxLease is null && defaultLease is null && (o.DefaultLease < o.MinLease || o.DefaultLease > o.MaxLease))
        {
            yield return new(nameof(o.DefaultLease), $"{nameof(o.DefaultLease)} ({Ms(o.DefaultLease)}) must lie between {nameof(o.MinLease)} ({Ms(o.MinLease)}) and {nameof(o.MaxLease)} ({Ms(o.MaxLease)}).");
        }

        if (minLease is null && leaseCheck is null && o.LeaseCheckInterval > o.MinLease)
        {
            yield return new(nameof(o.LeaseCheckInterval), $"{nameof(o.LeaseCheckInterval)} ({Ms(o.LeaseCheckInterval)}) must not exceed {nameof(o.MinLease)} ({Ms(o.MinLease)}), or lapsed sessions outlive their lease by more than one lease.");
        }

        var chunkInRange = o.StreamChunkBytes is >= OptionLimits.MinChunkBytes and <= OptionLimits.MaxChunkBytes;
        if (!chunkInRange)
        {
            yield return new(nameof(o.StreamChunkBytes), $"{nameof(o.StreamChunkBytes)} must be {OptionLimits.MinChunkBytes} to {OptionLimits.MaxChunkBytes} bytes (4 KiB to 4 MiB); got {o.StreamChunkBytes}.");
        }

        var messageInRange = o.MaxMessageBytes >= OptionLimits.MinMessageBytes;
        if (!messageInRange)
        {
            yield return new(nameof(o.MaxMessageBytes), $"{nameof(o.MaxMessageBytes)} must be at least {OptionLimits.MinMessageBytes} bytes (2 MiB); got {o.MaxMessageBytes}.");
        }

        var unaryInRange = o.MaxUnaryObjectBytes > 0;
        if (!unaryInRange)
        {
            yield return new(nameof(o.MaxUnaryObjectBytes), $"{nameof(o.MaxUnaryObjectBytes)} must be positive; got {o.MaxUnaryObjectBytes}.");
        }

        if (messageInRange && unaryInRange && o.MaxUnaryObjectBytes > OptionLimits.PayloadLimit(o.MaxMessageBytes))
        {
            yield return new(nameof(o.MaxUnaryObjectBytes), $"{nameof(o.MaxUnaryObjectBytes)} ({o.MaxUnaryObjectBytes}) must fit in {nameof(o.MaxMessageBytes)} ({o.MaxMessageBytes}) less 4 KiB of headroom: lower {nameof(o.MaxUnaryObjectBytes)} or raise {nameof(o.MaxMessageBytes)}.");
        }

        if (messageInRange && chunkInRange && o.StreamChunkBytes > OptionLimits.PayloadLimit(o.MaxMessageBytes))
        {
            yield return new(nameof(o.StreamChunkBytes), $"{nameof(o.StreamChunkBytes)} ({o.StreamChunkBytes}) must fit in {nameof(o.MaxMessageBytes)} ({o.MaxMessageBytes}) less 4 KiB of headroom: lower {nameof(o.StreamChunkBytes)} or raise {nameof(o.MaxMessageBytes)}.");
        }

        if (o.TombstoneCapacity < 0)
        {
            yield return new(nameof(o.TombstoneCapacity), $"{nameof(o.TombstoneCapacity)} must not be negative; got {o.TombstoneCapacity}.");
        }

        if (o.SpillCapacityBytes < 0)
        {
            yield return new(nameof(o.SpillCapacityBytes), $"{nameof(o.SpillCapacityBytes)} must not be negative (0 turns spilling off); got {o.SpillCapacityBytes}.");
        }

        if (o.SpillDirectory is not null && (string.IsNullOrWhiteSpace(o.SpillDirectory) || !Path.IsPathFullyQualified(o.SpillDirectory)))
        {
            yield return new(nameof(o.SpillDirectory), $"{nameof(o.SpillDirectory)} must be an absolute path, such as /var/tmp, or null for the system's temporary directory; got '{o.SpillDirectory}'.");
        }

        if (o.Redis is not null && string.IsNullOrWhiteSpace(o.Redis))
        {
            yield return new(nameof(o.Redis), $"{nameof(o.Redis)} must be a Redis configuration string, such as redis-host:6379 (leave it out for a single worker); got an empty one.");
        }
        else if (o.Redis is not null && RedisConfigurationError(o.Redis) is { } redisError)
        {
            // The value is not echoed: it may carry a password.
            yield return new(nameof(o.Redis), $"{nameof(o.Redis)} must be a Redis configuration string such as redis-host:6379 or redis-host:6379,password=...: {redisError}.");
        }

        if (o.ClusterName is null || !Cluster.ClusterKeys.IsValidClusterName(o.ClusterName))
        {
            yield return new(nameof(o.ClusterName), $"{nameof(o.ClusterName)} must be 1 to 64 letters, digits, '-', '_' or '.'; got '{o.ClusterName}'.");
        }

        if (o.ClusterLease < TimeSpan.FromSeconds(1) || o.ClusterLease > TimeSpan.FromMinutes(10))
        {
            yield return new(nameof(o.ClusterLease), $"{nameof(o.ClusterLease)} must be 1 second to 10 minutes (1000 to 600000 ms); got {Ms(o.ClusterLease)}.");
        }
    }

    private static string? RedisConfigurationError(string configuration)
    {
        if (configuration.Contains("://", StringComparison.Ordinal))
        {
            return "a URL such as redis://host:6379 is not one; write host:6379";
        }

        try
        {
            var parsed = StackExchange.Redis.ConfigurationOptions.Parse(configuration);
            return parsed.EndPoints.Count == 0 ? "it names no host and port" : null;
        }
        catch (ArgumentException ex)
        {
            return ex.Message.TrimEnd('.');
        }
    }

    /// <summary>A time as milliseconds, the unit of the host's flags (TimeSpan's own format reads 00:00:00.1000000).</summary>
    private static string Ms(TimeSpan value) => value.TotalMilliseconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + " ms";

    private static OptionFailure? Time(TimeSpan value, string option) =>
        value <= TimeSpan.Zero || value > OptionLimits.MaxTime
            ? new OptionFailure(option, $"{option} must be positive and at most {int.MaxValue} ms (about 24.8 days); got {Ms(value)}.")
            : null;
}

/// <summary>One broken rule: the option it names (a <see cref="WorkerOptions"/> property) and what is wrong.</summary>
internal readonly record struct OptionFailure(string Option, string Message);
