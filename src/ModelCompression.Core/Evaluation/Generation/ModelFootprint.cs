using ModelCompression.Onnx;

namespace ModelCompression.Evaluation;

/// <summary>
/// What a model file costs on disk and in weights, by the cost metrics' names (<see cref="MetricInfo.Cost"/>): the
/// "size, parameters" every generative model is reported with, counted as <see cref="ModelEvaluation.Measure(string, string, ModelCompression.Data.Dataset, EvaluateOptions, float[])"/> counts them for classifiers.
/// </summary>
/// <param name="SizeBytes">The model file plus its external data files.</param>
/// <param name="Parameters">Initializer elements, as stored (<see cref="ParameterCount"/>).</param>
/// <param name="NonZeroParameters">Initializer elements whose stored value is not zero.</param>
public sealed record ModelFootprint(long SizeBytes, long Parameters, long NonZeroParameters)
{
    /// <summary>Size in MB (10^6 bytes).</summary>
    public double SizeMb => SizeBytes / 1e6;

    /// <summary>size_mb, size_bytes, parameters and nonzero_parameters by gate name.</summary>
    public IReadOnlyDictionary<string, double> Metrics => new Dictionary<string, double>(StringComparer.Ordinal)
    {
        ["size_mb"] = SizeMb,
        ["size_bytes"] = SizeBytes,
        ["parameters"] = Parameters,
        ["nonzero_parameters"] = NonZeroParameters,
    };

    /// <summary>Counts the model at <paramref name="modelPath"/> (checked as <see cref="OnnxModelFile.LoadChecked"/> checks it: MC2001-MC2005).</summary>
    public static ModelFootprint Measure(string modelPath)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        var model = OnnxModelFile.LoadChecked(modelPath);
        var (parameters, nonZero) = ParameterCount.Count(model);
        return new ModelFootprint(ModelEvaluation.SizeOnDisk(modelPath, model), parameters, nonZero);
    }
}
