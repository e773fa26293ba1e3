using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>
/// A float model made ready for static quantization: BatchNormalization folded into the preceding Conv
/// (an exact rewrite, so calibration sees the tensors the quantized model will have), every node named,
/// and the layers that can be quantized found.
/// </summary>
public sealed class StaticQuantizationPlan
{
    internal StaticQuantizationPlan(
        ModelProto model,
        QuantizationScheme activations,
        IReadOnlyList<string> candidates,
        IReadOnlyList<string> skipped,
        IReadOnlyList<string> foldedBatchNorms,
        IReadOnlyList<string> tensorsToCalibrate)
    {
        Model = model;
        Activations = activations;
        Candidates = candidates;
        Skipped = skipped;
        FoldedBatchNorms = foldedBatchNorms;
        TensorsToCalibrate = tensorsToCalibrate;
    }

    /// <summary>The prepared float model: computes what the input model computes.</summary>
    public ModelProto Model { get; }

    /// <summary>The activation scheme the plan was made for.</summary>
    public QuantizationScheme Activations { get; }

    /// <summary>The Conv, MatMul, Gemm and embedding Gather nodes that can be quantized and are not excluded, in graph order.</summary>
    public IReadOnlyList<string> Candidates { get; }

    /// <summary>Conv, MatMul, Gemm and embedding Gather nodes left in float, each as "name (op): reason".</summary>
    public IReadOnlyList<string> Skipped { get; }

    /// <summary>The BatchNormalization nodes folded into their Conv.</summary>
    public IReadOnlyList<string> FoldedBatchNorms { get; }

    /// <summary>The activations whose ranges quantizing any subset of <see cref="Candidates"/> needs.</summary>
    public IReadOnlyList<string> TensorsToCalibrate { get; }
}

/// <summary>What static quantization did.</summary>
/// <param name="QuantizedNodes">The layers now taking int8 weights and activations.</param>
/// <param name="QuantizedTensors">The activations that got a QuantizeLinear/DequantizeLinear pair.</param>
public sealed record StaticQuantizationReport(IReadOnlyList<string> QuantizedNodes, IReadOnlyList<string> QuantizedTensors);
