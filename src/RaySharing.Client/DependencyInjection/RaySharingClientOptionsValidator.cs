using Microsoft.Extensions.Options;

namespace RaySharing.DependencyInjection;

/// <summary>Validates <see cref="RaySharingClientOptions"/> with the same rules as <see cref="RaySharingClient.ConnectAsync"/>, naming the bad option.</summary>
internal sealed class RaySharingClientOptionsValidator : IValidateOptions<RaySharingClientOptions>
{
    public ValidateOptionsResult Validate(string? name, RaySharingClientOptions options)
    {
        try
        {
            options.Validate();
            return ValidateOptionsResult.Success;
        }
        catch (ArgumentException ex)
        {
            return ValidateOptionsResult.Fail($"{nameof(RaySharingClientOptions)}.{ex.ParamName}: {ex.Message}");
        }
    }
}
