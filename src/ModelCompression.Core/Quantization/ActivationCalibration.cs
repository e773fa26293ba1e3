using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>
/// Runs the float model over calibration samples in ONNX Runtime and records the values of chosen
/// intermediate tensors. The tensors become extra graph outputs of a copy of the model (the model itself is
/// not changed); a graph input is read straight from the fed batch.
/// </summary>
public static class ActivationCalibration
{
    /// <summary>Samples per ONNX Runtime call.</summary>
    private const int BatchSize = 64;

    /// <summary>The quantization range of each of <paramref name="tensors"/> (float tensors of <paramref name="model"/>).</summary>
    /// <param name="model">The float model.</param>
    /// <param name="tensors">The value names to calibrate.</param>
    /// <param name="samples">The calibration samples.</param>
    /// <param name="sampleShape">The shape the model takes one sample in.</param>
    /// <param name="method">How a range is chosen from the values.</param>
    /// <param name="percentile">The percentile of |x| for <see cref="CalibrationMethod.Percentile"/>.</param>
    /// <param name="scheme">The activation scheme (sets the number of levels entropy calibration aims at).</param>
    /// <exception cref="CompressionException">MC2053: a tensor took a NaN or infinite value.</exception>
    public static IReadOnlyDictionary<string, (float Min, float Max)> Collect(
        ModelProto model,
        IReadOnlyCollection<string> tensors,
        Dataset samples,
        long[] sampleShape,
        CalibrationMethod method,
        double percentile,
        QuantizationScheme scheme)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(samples);
        var inputs = model.Graph.Input.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var copy = model.Clone();
        var outputs = copy.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in tensors.Where(t => !inputs.Contains(t) && !outputs.Contains(t)))
        {
            // No type: ONNX Runtime infers it, which works for any intermediate value.
            copy.Graph.Output.Add(new ValueInfoProto { Name = name });
        }

        var calibrators = tensors.Distinct(StringComparer.Ordinal).ToDictionary(t => t, _ => new TensorCalibrator(), StringComparer.Ordinal);
        string[] fetched = [.. calibrators.Keys.Where(t => !inputs.Contains(t))];
        using var session = new OrtModel(copy, "calibration copy of the model");
        // ONNX Runtime wants at least one output even when every tensor to calibrate is a graph input.
        IReadOnlyList<string> requested = fetched.Length > 0 ? fetched : [session.OutputNames[0]];
        session.Run(samples, sampleShape, BatchSize, requested, (input, _, values) =>
        {
            Observe(calibrators, fetched, input, values, inputs, (calibrator, span) => calibrator.ObserveRange(span));
        });

        if (TensorCalibrator.NeedsHistogram(method))
        {
            session.Run(samples, sampleShape, BatchSize, requested, (input, _, values) =>
            {
                Observe(calibrators, fetched, input, values, inputs, (calibrator, span) =>
                {
                    calibrator.ObserveHistogram(span);
                    return true;
                });
            });
        }

        return calibrators.ToDictionary(
            c => c.Key,
            c => c.Value.Range(method, percentile, Levels(scheme, c.Value.Min)),
            StringComparer.Ordinal);
    }

    /// <summary>
    /// The integer steps |x| gets: 256 for uint8 data that is never negative (a ReLU output), else 128
    /// (int8, or uint8 split between negative and positive values).
    /// </summary>
    private static int Levels(QuantizationScheme scheme, float min) =>
        scheme == QuantizationScheme.Asymmetric && min >= 0 ? 256 : 128;

    private delegate bool Observer(TensorCalibrator calibrator, ReadOnlySpan<float> values);

    private static void Observe(
        Dictionary<string, TensorCalibrator> calibrators,
        string[] fetched,
        float[] input,
        IReadOnlyList<Microsoft.ML.OnnxRuntime.OrtValue> values,
        HashSet<string> inputs,
        Observer observe)
    {
        foreach (var (name, calibrator) in calibrators)
        {
            var span = inputs.Contains(name)
                ? input.AsSpan()
                : values[Array.IndexOf(fetched, name)].GetTensorDataAsSpan<float>();
            if (!observe(calibrator, span))
            {
                throw CompressionException.Error(
                    DiagnosticCodes.CalibrationFailed,
                    $"Calibration: tensor '{name}' takes NaN or infinite values on the calibration data; it cannot be quantized.");
            }
        }
    }
}
