using System.Collections;
using System.Globalization;
using System.Reflection;

namespace ModelCompression.Stages;

/// <summary>
/// Marks a property of a stage's typed details record as one entry of <see cref="StageResult.Details"/> (what
/// report.json shows under "details"). The key is the report's key; the property's type decides the text.
/// </summary>
/// <param name="key">The key in report.json (snake_case).</param>
[AttributeUsage(AttributeTargets.Property)]
public sealed class DetailAttribute(string key) : Attribute
{
    /// <summary>The key in report.json.</summary>
    public string Key { get; } = key;

    /// <summary>A .NET format string for numbers (e.g. "0.0000"); null writes the shortest round-trip text.</summary>
    public string? Format { get; init; }

    /// <summary>What joins the items of a list value.</summary>
    public string Separator { get; init; } = ", ";

    /// <summary>Write an empty string for a null value instead of leaving the key out.</summary>
    public bool EmptyWhenNull { get; init; }
}

/// <summary>
/// Turns a stage's typed details (a record whose properties carry <see cref="DetailAttribute"/>) into the ordered
/// text entries of <see cref="StageResult.Details"/>, in one way for every stage: numbers in the invariant
/// culture, booleans as "true"/"false", enums in lower case, lists joined. Stages keep their numbers typed and
/// never format (or parse back) report text themselves.
/// </summary>
public static class StageDetails
{
    /// <summary>
    /// The entries of <paramref name="details"/>: its [Detail] properties in declaration order (a base record's
    /// first), a null value left out unless <see cref="DetailAttribute.EmptyWhenNull"/>. A property of type
    /// <see cref="IReadOnlyDictionary{TKey, TValue}"/> of strings without [Detail] adds its entries as they are (keys
    /// made from data, such as one per layer).
    /// </summary>
    public static Dictionary<string, string> Of(object details)
    {
        ArgumentNullException.ThrowIfNull(details);
        var entries = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in PropertiesOf(details.GetType()))
        {
            var value = property.GetValue(details);
            if (property.GetCustomAttribute<DetailAttribute>() is not { } detail)
            {
                if (value is IReadOnlyDictionary<string, string> extra)
                {
                    foreach (var (key, text) in extra)
                    {
                        entries[key] = text;
                    }
                }

                continue;
            }

            if (value is null)
            {
                if (detail.EmptyWhenNull)
                {
                    entries[detail.Key] = "";
                }

                continue;
            }

            entries[detail.Key] = Text(value, detail);
        }

        return entries;
    }

    /// <summary>The text of one value, as report.json shows it.</summary>
    private static string Text(object value, DetailAttribute detail) => value switch
    {
        string text => text,
        bool flag => flag ? "true" : "false",
        Enum choice => choice.ToString().ToLowerInvariant(),
        IFormattable number => number.ToString(detail.Format, CultureInfo.InvariantCulture),
        IEnumerable items => string.Join(detail.Separator, items.Cast<object?>().Select(i => i is null ? "" : Text(i, detail))),
        _ => value.ToString() ?? "",
    };

    /// <summary>Public instance properties, a base type's before a derived type's, each type's in declaration order.</summary>
    private static IEnumerable<PropertyInfo> PropertiesOf(Type type)
    {
        var chain = new Stack<Type>();
        for (var t = type; t is not null && t != typeof(object); t = t.BaseType)
        {
            chain.Push(t);
        }

        return chain.SelectMany(t => t.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly)
            .Where(p => p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract")
            .OrderBy(p => p.MetadataToken));
    }
}
