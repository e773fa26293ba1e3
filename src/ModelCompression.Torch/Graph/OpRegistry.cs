namespace ModelCompression.Torch.Graph;

/// <summary>
/// The ONNX operators a <see cref="TrainableGraph"/> can run, each mapped to TorchSharp ops with autograd.
/// Semantics follow the ONNX operator specification (default domain, opsets 13 to 21; where an attribute
/// became an input across versions, whichever form the node uses is read).
/// </summary>
public static class OpRegistry
{
    private static readonly Dictionary<string, OpKernel> Kernels = Build();

    /// <summary>The supported operator types, sorted.</summary>
    public static IReadOnlyList<string> SupportedOperators { get; } = [.. Kernels.Keys.Order(StringComparer.Ordinal)];

    /// <summary>The kernel for <paramref name="opType"/> in the default domain, if there is one.</summary>
    public static bool TryGet(string domain, string opType, out OpKernel kernel)
    {
        kernel = null!;
        return (domain.Length == 0 || domain == "ai.onnx") && Kernels.TryGetValue(opType, out kernel!);
    }

    private static Dictionary<string, OpKernel> Build()
    {
        var kernels = new Dictionary<string, OpKernel>(StringComparer.Ordinal);
        ElementwiseOps.Register(kernels);
        LinearOps.Register(kernels);
        ConvPoolOps.Register(kernels);
        NormalizationOps.Register(kernels);
        ShapeOps.Register(kernels);
        ReductionOps.Register(kernels);
        SequenceOps.Register(kernels);
        return kernels;
    }
}
