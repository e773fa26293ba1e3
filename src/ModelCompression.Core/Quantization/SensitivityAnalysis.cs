using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>The accuracy effect of quantizing one layer while every other layer stays float.</summary>
/// <param name="Node">The layer.</param>
/// <param name="AccuracyDrop">Float accuracy minus the accuracy with only this layer quantized (negative: it helped).</param>
/// <param name="Agreement">Fraction of samples on which the model with only this layer quantized agrees with the float model.</param>
public sealed record LayerSensitivity(string Node, double AccuracyDrop, double Agreement);

/// <summary>The layers finally quantized and the model they make.</summary>
/// <param name="Model">The quantized model.</param>
/// <param name="Quantized">The layers quantized in it.</param>
/// <param name="KeptFloat">Layers put back to float by <see cref="SensitivityAnalysis.KeepSensitiveFloat"/>, in the order they went back.</param>
/// <param name="Score">Its score on the check slice.</param>
public sealed record LayerSelection(ModelProto Model, IReadOnlyList<string> Quantized, IReadOnlyList<string> KeptFloat, SliceScore Score);

/// <summary>
/// Per-layer sensitivity to quantization, and the search that leaves the most sensitive layers in float.
/// The quantizer is passed in as a function from the set of layers to quantize to a model, so dynamic and
/// static quantization share it.
/// </summary>
public static class SensitivityAnalysis
{
    /// <summary>
    /// Quantizes each of <paramref name="layers"/> alone and scores it on <paramref name="slice"/>. Most
    /// sensitive first: the largest accuracy drop, then the lowest agreement (which separates layers whose
    /// drops tie on a small slice).
    /// </summary>
    public static IReadOnlyList<LayerSensitivity> Measure(IReadOnlyList<string> layers, Func<IReadOnlyCollection<string>, ModelProto> quantize, CheckSlice slice)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(quantize);
        ArgumentNullException.ThrowIfNull(slice);
        return [.. layers
            .Select(layer =>
            {
                var score = slice.Score(quantize([layer]), $"model with only '{layer}' quantized");
                return new LayerSensitivity(layer, slice.FloatAccuracy - score.Accuracy, score.Agreement);
            })
            .OrderByDescending(s => s.AccuracyDrop)
            .ThenBy(s => s.Agreement)];
    }

    /// <summary>
    /// Quantizes every layer, then puts layers back to float one at a time in <paramref name="sensitivity"/>
    /// order until the accuracy drop against the float model on <paramref name="slice"/> is at most
    /// <paramref name="maxAccuracyDrop"/> (or every layer is float again).
    /// </summary>
    public static LayerSelection KeepSensitiveFloat(
        IReadOnlyList<string> layers,
        IReadOnlyList<LayerSensitivity> sensitivity,
        Func<IReadOnlyCollection<string>, ModelProto> quantize,
        CheckSlice slice,
        double maxAccuracyDrop)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(sensitivity);
        ArgumentNullException.ThrowIfNull(quantize);
        ArgumentNullException.ThrowIfNull(slice);
        var quantized = layers.ToList();
        var kept = new List<string>();
        var model = quantize(quantized);
        var score = slice.Score(model, "quantized model");
        foreach (var layer in sensitivity.Select(s => s.Node))
        {
            if (slice.FloatAccuracy - score.Accuracy <= maxAccuracyDrop)
            {
                break;
            }

            quantized.Remove(layer);
            kept.Add(layer);
            model = quantize(quantized);
            score = slice.Score(model, $"quantized model without '{string.Join("', '", kept)}'");
        }

        return new LayerSelection(model, quantized, kept, score);
    }
}
