using System.Reflection;
using TorchSharp;

namespace ModelCompression.Core.Tests.Safety;

/// <summary>
/// TorchSharp 0.107 turns a C# number into a <see cref="Scalar"/> (a finalizable handle) when a method takes a
/// Scalar, and passes only the handle to native code: once the handle is read the Scalar is unreachable, and a
/// garbage collection during the native call can finalize it, which aborts the process at random
/// ("Unknown scalar type", c10/core/Scalar.h toFloat). Reproduced here with x.add_(y, alpha: 0.5) under a
/// GC-heavy thread within seconds; with the Scalar held by a 'using' variable the same loop ran 20 million times.
/// This test reads the IL of our assemblies and fails on any implicit conversion to Scalar, and on any call into a
/// TorchSharp method that makes one internally, so the bug class cannot come back unnoticed.
/// </summary>
public sealed class ScalarLifetimeTests
{
    [Fact]
    public void Our_assemblies_never_hand_TorchSharp_a_temporary_Scalar()
    {
        var assemblies = new[]
        {
            typeof(ModelCompression.Torch.Training.ClassificationTrainer).Assembly,
            typeof(ModelCompression.Pipeline.CompressionPipeline).Assembly,
        };
        var unsafeTorchSharpMethods = new Dictionary<MethodBase, bool>();
        var problems = new List<string>();
        foreach (var method in assemblies.SelectMany(IlScanner.AllMethods))
        {
            foreach (var callee in IlScanner.Callees(method))
            {
                if (IsImplicitScalarConversion(callee))
                {
                    problems.Add($"{Describe(method)} converts a number to a temporary Scalar");
                }
                else if (callee.DeclaringType?.Assembly == typeof(Scalar).Assembly && MakesTemporaryScalar(callee, unsafeTorchSharpMethods))
                {
                    problems.Add($"{Describe(method)} calls {Describe(callee)}, which makes a temporary Scalar inside");
                }
            }
        }

        Assert.True(problems.Count == 0, "Hold Scalars in 'using' variables (see this test's summary):\n" + string.Join("\n", problems.Distinct().Order()));
    }

    [Fact]
    public void The_scan_finds_an_implicit_conversion()
    {
        // The scanner must be able to fail: this method converts 0.5 to a Scalar implicitly.
        var method = typeof(ScalarLifetimeTests).GetMethod(nameof(ConvertsImplicitly), BindingFlags.NonPublic | BindingFlags.Static)!;
        Assert.Contains(IlScanner.Callees(method), IsImplicitScalarConversion);
    }

    private static Scalar ConvertsImplicitly() => 0.5;

    private static bool IsImplicitScalarConversion(MethodBase callee) =>
        callee is MethodInfo { Name: "op_Implicit" } info && info.ReturnType == typeof(Scalar);

    /// <summary>
    /// Whether a TorchSharp method converts a number to a Scalar itself, or through the TorchSharp methods it
    /// calls (a few calls deep: the overloads that forward to each other).
    /// </summary>
    private static bool MakesTemporaryScalar(MethodBase method, Dictionary<MethodBase, bool> known, int depth = 4)
    {
        if (known.TryGetValue(method, out var result))
        {
            return result;
        }

        known[method] = false; // Recursion guard; the real answer is stored below.
        var callees = IlScanner.Callees(method);
        result = callees.Any(IsImplicitScalarConversion)
            || (depth > 1 && callees.Any(c => c.DeclaringType?.Assembly == typeof(Scalar).Assembly && MakesTemporaryScalar(c, known, depth - 1)));
        known[method] = result;
        return result;
    }

    private static string Describe(MethodBase method) => $"{method.DeclaringType?.FullName}.{method.Name}";
}
