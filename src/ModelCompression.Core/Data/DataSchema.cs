using System.Globalization;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>One input of an ONNX model as declared.</summary>
/// <param name="Name">The input's name.</param>
/// <param name="ElementType">"float32", "int64", or the ONNX type's name when it is neither (then no data can feed it).</param>
/// <param name="Dimensions">Declared dimensions; -1 where symbolic.</param>
/// <param name="DimensionNames">The symbolic names ("batch", "sequence"), empty where fixed or unnamed.</param>
public sealed record ModelInput(string Name, string ElementType, int[] Dimensions, string[] DimensionNames)
{
    /// <summary>"input_ids int64 [batch, 128]".</summary>
    public string Describe() =>
        $"{Name} {ElementType} [{string.Join(", ", Dimensions.Select((d, i) => d >= 0 ? d.ToString(CultureInfo.InvariantCulture) : DimensionNames.ElementAtOrDefault(i) is { Length: > 0 } name ? name : "?"))}]";
}

/// <summary>Which data tensor feeds which model input, read as which type and in which sample shape.</summary>
/// <param name="Tensor">The data tensor's name.</param>
/// <param name="Input">The model input's name.</param>
/// <param name="ElementType">The type the input takes (int64 data feeding a float input is converted).</param>
/// <param name="SampleShape">One sample's shape as the model takes it (no batch axis).</param>
public sealed record InputBinding(string Tensor, string Input, DataElementType ElementType, long[] SampleShape);

/// <summary>
/// The schema check before any work: a model's inputs against a data set's tensors. Tensors are matched to
/// inputs by name, or positionally when the model has one input and the data one tensor. An input takes
/// its tensor when the type fits (float inputs take int64 data converted; int64 inputs need int64 data) and
/// the shape fits (fixed sample dimensions: the same number of values, reshaped; symbolic ones: the same rank
/// and equal fixed sizes). A mismatch is MC2020 printing both sides.
/// </summary>
public static class DataSchema
{
    /// <summary>Binds <paramref name="data"/> to <paramref name="inputs"/>; throws MC2020 naming <paramref name="role"/> and <paramref name="modelPath"/>.</summary>
    public static IReadOnlyList<InputBinding> Bind(Dataset data, IReadOnlyList<ModelInput> inputs, string role, string modelPath)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(inputs);
        var problems = new List<string>();
        var bindings = new List<InputBinding>();
        foreach (var input in inputs)
        {
            var tensor = inputs.Count == 1 && data.Tensors.Count == 1 ? data.Tensors[0] : data.Tensor(input.Name);
            if (tensor is null)
            {
                problems.Add($"{role} input '{input.Name}' has no data tensor of that name");
                continue;
            }

            var type = input.ElementType switch
            {
                "float32" => DataElementType.Float32,
                "int64" => DataElementType.Int64,
                _ => (DataElementType?)null,
            };
            if (type is null)
            {
                problems.Add($"{role} input '{input.Name}' takes {input.ElementType}; data feeds float32 and int64 inputs");
                continue;
            }

            if (type == DataElementType.Int64 && tensor.ElementType != DataElementType.Int64)
            {
                problems.Add($"{role} input '{input.Name}' takes int64 but '{tensor.Name}' holds {tensor.StorageType}{(tensor.Transform is null ? "" : " (normalised)")} values");
                continue;
            }

            if (SampleShape(input, tensor, out var why) is { } shape)
            {
                bindings.Add(new InputBinding(tensor.Name, input.Name, type.Value, shape));
            }
            else
            {
                problems.Add(why!);
            }
        }

        if (problems.Count > 0)
        {
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                $"The data does not fit the {role} '{modelPath}': {string.Join("; ", problems)}. data: {string.Join(", ", data.Tensors.Select(t => t.Describe()))}; {role}: {string.Join(", ", inputs.Select(i => i.Describe()))}.",
                modelPath);
        }

        return bindings;
    }

    private static long[]? SampleShape(ModelInput input, DataTensor tensor, out string? why)
    {
        why = null;
        if (input.Dimensions.Length == 0)
        {
            why = $"input '{input.Name}' has no batch axis";
            return null;
        }

        var sample = input.Dimensions[1..];
        if (sample.All(d => d > 0))
        {
            long[] shape = [.. sample.Select(d => (long)d)];
            var size = shape.Aggregate(1L, (a, b) => a * b);
            if (size == tensor.SampleSize)
            {
                return shape;
            }

            why = $"input '{input.Name}' takes {size} values per sample but '{tensor.Name}' has {tensor.SampleSize}";
            return null;
        }

        if (sample.Length != tensor.SampleShape.Length)
        {
            why = $"input '{input.Name}' takes samples of rank {sample.Length} but '{tensor.Name}' has rank {tensor.SampleShape.Length}";
            return null;
        }

        for (var i = 0; i < sample.Length; i++)
        {
            if (sample[i] > 0 && sample[i] != tensor.SampleShape[i])
            {
                why = $"input '{input.Name}' takes {sample[i]} at sample axis {i} but '{tensor.Name}' has {tensor.SampleShape[i]}";
                return null;
            }
        }

        return tensor.SampleShape;
    }
}
