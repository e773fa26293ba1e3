using ModelCompression.Core.Tests.Safety.Probes.Low;

namespace ModelCompression.Core.Tests.Safety.Probes.High;

// The high layer of NamespaceDirectionTests' self-tests: the low layer's LayeringProbe uses each of these types
// in one way only, so the self-tests can tell which kind of reference the scanner found.

/// <summary>Used only as an attribute, with an enum argument.</summary>
[AttributeUsage(AttributeTargets.All)]
internal sealed class ProbeAttribute(ProbeKind kind) : Attribute
{
    public ProbeKind Kind { get; } = kind;
}

/// <summary>Used only as an attribute's enum argument (its literal is inlined, its type stays in metadata).</summary>
internal enum ProbeKind
{
    Plain,
    Special,
}

/// <summary>Used only as a generic argument of a field's type.</summary>
internal sealed class ProbeFieldItem;

/// <summary>Used only as a method parameter.</summary>
internal sealed class ProbeParameter;

/// <summary>Used only by a static call in a method body.</summary>
internal static class ProbeCallee
{
    public static int Answer() => 42;
}

/// <summary>Used only by typeof in a method body (ldtoken).</summary>
internal sealed class ProbeToken;

/// <summary>Used only inside a lambda, which the compiler moves to a nested closure type.</summary>
internal static class ProbeInLambda
{
    public static readonly int Value = 7;
}

/// <summary>Used only as the base type of a nested type.</summary>
internal abstract class ProbeBase
{
    /// <summary>Points back down at the probe, so that with equal ranks the two namespaces form a cycle.</summary>
    public abstract LayeringProbe? Owner { get; }
}
