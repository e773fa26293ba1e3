using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Quantization;

/// <summary>
/// Runs the float model over calibration samples in ONNX Runtime and records the values of chosen float
/// tensors (intermediate activations, or graph inputs as fed). The intermediate tensors become extra graph
/// outputs of a copy of the model (the model itself is not changed). The samples feed every input the model
/// has, bound by name (token ids and mask alike); only float values are calibrated, integer ones (token ids,
/// a Gather's indices) are never quantized.
/// </summary>
public static class ActivationCalibration
{
    /// <summary>Samples per ONNX Runtime call.</summary>
    private const int BatchSize = 64;

    /// <summary>The quantization range of each of <paramref name="tensors"/> (float tensors of <paramref name="model"/>).</summary>
    /// <param name="model">The float model.</param>
    /// <param name="tensors">The value names to calibrate: node outputs or graph inputs, all float.</param>
    /// <param name="samples">The calibration samples.</param>
    /// <param name="method">How a range is chosen from the values.</param>
    /// <param name="percentile">The percentile of |x| for <see cref="CalibrationMethod.Percentile"/>.</param>
    /// <param name="scheme">The activation scheme (sets the number of levels entropy calibration aims at).</param>
    /// <exception cref="CompressionException">MC2053: a tensor took a NaN or infinite value.</exception>
    /// <exception cref="ArgumentException">A tensor is not a float value of the model.</exception>
    public static IReadOnlyDictionary<string, (float Min, float Max)> Collect(
        ModelProto model,
        IReadOnlyCollection<string> tensors,
        Dataset samples,
        CalibrationMethod method,
        double percentile,
        QuantizationScheme scheme)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(samples);
        string[] names = [.. tensors.Distinct(StringComparer.Ordinal)];
        using var runner = OnnxRunner.WithIntermediateOutputs(model, "calibration copy of the model", names);
        var inputTypes = runner.Inputs.ToDictionary(i => i.Name, i => i.ElementType, StringComparer.Ordinal);
        if (names.FirstOrDefault(n => inputTypes.TryGetValue(n, out var type) ? type != "float32" : runner.OutputTypes[n] != TensorElementType.Float) is { } integer)
        {
            throw new ArgumentException($"'{integer}' is not a float value; only float activations are calibrated.", nameof(tensors));
        }

        var calibrators = names.Select(_ => new TensorCalibrator()).ToArray();
        runner.Run(samples, BatchSize, names, (_, _, values) =>
            Observe(names, calibrators, values, (calibrator, span) => calibrator.ObserveRange(span)));

        if (TensorCalibrator.NeedsHistogram(method))
        {
            runner.Run(samples, BatchSize, names, (_, _, values) =>
                Observe(names, calibrators, values, (calibrator, span) =>
                {
                    calibrator.ObserveHistogram(span);
                    return true;
                }));
        }

        return Enumerable.Range(0, names.Length).ToDictionary(
            i => names[i],
            i => calibrators[i].Range(method, percentile, Levels(scheme, calibrators[i].Min)),
            StringComparer.Ordinal);
    }

    /// <summary>
    /// The integer steps |x| gets: 256 for uint8 data that is never negative (a ReLU output), else 128
    /// (int8, or uint8 split between negative and positive values).
    /// </summary>
    private static int Levels(QuantizationScheme scheme, float min) =>
        scheme == QuantizationScheme.Asymmetric && min >= 0 ? 256 : 128;

    private delegate bool Observer(TensorCalibrator calibrator, ReadOnlySpan<float> values);

    private static void Observe(string[] names, TensorCalibrator[] calibrators, IReadOnlyList<OrtValue> values, Observer observe)
    {
        for (var i = 0; i < names.Length; i++)
        {
            if (!observe(calibrators[i], values[i].GetTensorDataAsSpan<float>()))
            {
                throw CompressionException.Error(
                    DiagnosticCodes.CalibrationFailed,
                    $"Calibration: tensor '{names[i]}' takes NaN or infinite values on the calibration data; it cannot be quantized.");
            }
        }
    }
}
