using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Inference;

/// <summary>One value a node of the model makes, as <see cref="ModelInspector"/> found it.</summary>
/// <param name="Name">The value's name: what recipes write in <c>hints</c> and <c>exclude</c>.</param>
/// <param name="OpType">The operator of the node that makes it.</param>
/// <param name="Node">The node's name.</param>
/// <param name="ElementType">Its element type in the probe run ("float32", "int64"...), or null when it was not measured.</param>
/// <param name="Shape">Its shape in the probe run, batch axis first, or null when it was not measured.</param>
public sealed record InspectedValue(string Name, string OpType, string Node, string? ElementType, long[]? Shape);

/// <summary>What a model takes and makes, for choosing hint tensors and exclusions.</summary>
/// <param name="Inputs">The data inputs as declared.</param>
/// <param name="Values">Every node output, in graph order.</param>
/// <param name="Parameters">Elements of every initializer.</param>
/// <param name="Probe">How the shapes were measured (the inputs fed), or why they were not.</param>
/// <param name="Weights">Every initializer: name, element type and dims.</param>
public sealed record ModelInspection(IReadOnlyList<ModelInput> Inputs, IReadOnlyList<InspectedValue> Values, long Parameters, string Probe, IReadOnlyList<(string Name, string ElementType, long[] Dims)> Weights);

/// <summary>
/// Lists the values inside an ONNX model with their shapes, measured by running ONNX Runtime once on a batch of
/// <see cref="ProbeBatch"/> synthetic samples (float inputs 0, integer inputs 1, free sequence axes
/// <see cref="ProbeSequence"/> long) with every node output fetched. The model file is not changed.
/// </summary>
public static class ModelInspector
{
    /// <summary>Samples in the probe batch (2, so the batch axis stands out from axes of 1).</summary>
    public const int ProbeBatch = 2;

    /// <summary>Length given to symbolic axes after the batch axis (sequences).</summary>
    public const int ProbeSequence = 8;

    /// <summary>Inspects the model at <paramref name="modelPath"/>; MC2002 when it cannot be read.</summary>
    public static ModelInspection Inspect(string modelPath) =>
        Inspect(OnnxModelFile.Load(modelPath), OnnxRunner.ReadInputs(modelPath), modelPath);

    /// <summary>Inspects an in-memory model; <paramref name="what"/> names it in messages.</summary>
    public static ModelInspection Inspect(ModelProto model, string what)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var runner = OnnxRunner.FromModel(model, what, threads: 1);
        return Inspect(model, runner.Inputs, what);
    }

    private static ModelInspection Inspect(ModelProto model, IReadOnlyList<ModelInput> inputs, string modelPath)
    {
        var nodes = model.Graph.Node.SelectMany(n => n.Output.Where(o => o.Length > 0).Select(o => (Value: o, Node: n))).ToList();
        var parameters = model.Graph.Initializer.Sum(TensorData.ElementCount);
        var measured = new Dictionary<string, (string Type, long[] Shape)>(StringComparer.Ordinal);
        string probe;
        try
        {
            using var data = ProbeData(inputs);
            using var runner = OnnxRunner.WithIntermediateOutputs(model, modelPath, [.. nodes.Select(n => n.Value)], threads: 1);
            var names = nodes.Select(n => n.Value).ToArray();
            runner.Run(data, data.Count, names, (_, _, values) =>
            {
                for (var i = 0; i < names.Length; i++)
                {
                    if (values[i].IsTensor)
                    {
                        var info = values[i].GetTensorTypeAndShape();
                        measured[names[i]] = (ElementName(info.ElementDataType), info.Shape);
                    }
                }
            });
            probe = $"shapes from one ONNX Runtime run on {string.Join(", ", data.Tensors.Select(t => $"{t.Name} [{data.Count}, {string.Join(", ", t.SampleShape)}]"))}";
        }
        catch (Exception e) when (e is CompressionException or OnnxRuntimeException or ArgumentException or InvalidOperationException)
        {
            // The listing is useful without shapes: a model whose inputs cannot be synthesised still shows its values.
            probe = $"shapes not measured: {e.Message}";
        }

        return new ModelInspection(
            inputs,
            [.. nodes.Select(n => measured.TryGetValue(n.Value, out var m)
                ? new InspectedValue(n.Value, n.Node.OpType, n.Node.Name, m.Type, m.Shape)
                : new InspectedValue(n.Value, n.Node.OpType, n.Node.Name, null, null))],
            parameters,
            probe,
            [.. model.Graph.Initializer.Select(i => (i.Name, ((TensorProto.Types.DataType)i.DataType).ToString().ToLowerInvariant(), i.Dims.ToArray()))]);
    }

    /// <summary>A Markdown listing: inputs, then every value with its operator, node and shape.</summary>
    public static string Markdown(ModelInspection inspection, string modelPath)
    {
        ArgumentNullException.ThrowIfNull(inspection);
        var invariant = CultureInfo.InvariantCulture;
        var text = new System.Text.StringBuilder();
        text.AppendLine(invariant, $"# {Path.GetFileName(modelPath)}");
        text.AppendLine();
        text.AppendLine(invariant, $"{inspection.Parameters.ToString("N0", invariant)} parameters; inputs: {string.Join("; ", inspection.Inputs.Select(i => i.Describe()))}.");
        text.AppendLine(invariant, $"The {inspection.Values.Count} values below are what a recipe's `hints` and `exclude` name; {inspection.Probe}.");
        text.AppendLine();
        text.AppendLine("| value | op | node | type | shape |");
        text.AppendLine("|---|---|---|---|---|");
        foreach (var value in inspection.Values)
        {
            var shape = value.Shape is null ? "" : $"[{string.Join(", ", value.Shape)}]";
            text.AppendLine(invariant, $"| `{value.Name}` | {value.OpType} | {value.Node} | {value.ElementType} | {shape} |");
        }

        text.AppendLine();
        text.AppendLine(invariant, $"{inspection.Weights.Count} initializers (weights and constants; `exclude` takes these names too):");
        text.AppendLine();
        text.AppendLine("| initializer | type | shape |");
        text.AppendLine("|---|---|---|");
        foreach (var (name, type, dims) in inspection.Weights)
        {
            text.AppendLine(invariant, $"| `{name}` | {type} | [{string.Join(", ", dims)}] |");
        }

        return text.ToString();
    }

    /// <summary>A batch of synthetic samples for every input, shaped as declared.</summary>
    private static Dataset ProbeData(IReadOnlyList<ModelInput> inputs)
    {
        var tensors = new List<DataTensor>();
        // A model with a fixed batch size gets that many samples.
        var batch = inputs.Select(i => i.Dimensions.FirstOrDefault()).FirstOrDefault(d => d > 0, ProbeBatch);
        foreach (var input in inputs)
        {
            long[] sample = [.. input.Dimensions.Skip(1).Select(d => d > 0 ? d : (long)ProbeSequence)];
            var size = (int)sample.Aggregate(1L, (a, b) => a * b) * batch;
            tensors.Add(input.ElementType switch
            {
                "float32" => DataTensor.FromFloats(input.Name, new float[size], sample),
                "int64" => DataTensor.FromInt64(input.Name, Enumerable.Repeat(1L, size).ToArray(), sample),
                var other => throw new ArgumentException($"input '{input.Name}' is {other}; the probe feeds float32 and int64 inputs"),
            });
        }

        return new Dataset(tensors, null, "probe");
    }

    private static string ElementName(Microsoft.ML.OnnxRuntime.Tensors.TensorElementType type) => type switch
    {
        Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float => "float32",
        Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int64 => "int64",
        Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Bool => "bool",
        var other => other.ToString().ToLowerInvariant(),
    };
}
