using System.Collections.Concurrent;
using System.Text;

namespace RaySharing.Internal;

/// <summary>
/// The type name written into envelopes for a .NET type: the full name without assembly details,
/// generic arguments in angle brackets, for example <c>System.Collections.Generic.List&lt;System.Int32&gt;</c>.
/// Stable across processes and versions, unlike assembly-qualified names.
/// </summary>
internal static class TypeNames
{
    private static readonly ConcurrentDictionary<Type, string> Cache = new();

    public static string Of<T>() => Of(typeof(T));

    public static string Of(Type type) => Cache.GetOrAdd(type, Build);

    private static string Build(Type type)
    {
        if (type.IsArray)
        {
            return Build(type.GetElementType()!) + "[" + new string(',', type.GetArrayRank() - 1) + "]";
        }

        if (!type.IsGenericType)
        {
            return type.FullName ?? type.Name;
        }

        var definition = type.GetGenericTypeDefinition().FullName ?? type.Name;
        var tick = definition.IndexOf('`', StringComparison.Ordinal);
        var builder = new StringBuilder(tick < 0 ? definition : definition[..tick]).Append('<');
        var arguments = type.GetGenericArguments();
        for (var i = 0; i < arguments.Length; i++)
        {
            builder.Append(i == 0 ? string.Empty : ",").Append(Build(arguments[i]));
        }

        return builder.Append('>').ToString();
    }
}
