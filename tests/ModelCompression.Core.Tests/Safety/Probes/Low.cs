using ModelCompression.Core.Tests.Safety.Probes.High;

namespace ModelCompression.Core.Tests.Safety.Probes.Low;

/// <summary>
/// The low layer of NamespaceDirectionTests' self-tests: a type that uses the high layer in every way the scanner
/// must see, each through a type of its own, so a self-test can fail if one kind of reference goes unseen.
/// </summary>
internal sealed class LayeringProbe
{
    private readonly List<ProbeFieldItem> _items = [];

    /// <summary>Carries an attribute with an enum argument.</summary>
    [Probe(ProbeKind.Special)]
    public int Count => _items.Count;

    /// <summary>Takes a high type as a parameter.</summary>
    public static int Take(ProbeParameter parameter) => parameter.GetHashCode();

    /// <summary>Calls a high type's static method.</summary>
    public static int Call() => ProbeCallee.Answer();

    /// <summary>Names a high type with typeof.</summary>
    public static string Token() => typeof(ProbeToken).Name;

    /// <summary>Reads a high type's field inside a lambda (the compiler moves the body to a nested type).</summary>
    public static Func<int> Lambda() => () => ProbeInLambda.Value;

    /// <summary>A nested type with a high base type.</summary>
    internal sealed class Derived : ProbeBase
    {
        /// <inheritdoc/>
        public override LayeringProbe? Owner => null;
    }
}
