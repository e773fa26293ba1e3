using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Pruning;

/// <summary>Labelled float samples (and the teacher's logits for them) to score units on.</summary>
/// <param name="Inputs">Samples, row-major, <paramref name="SampleShape"/> elements each.</param>
/// <param name="SampleShape">One sample's shape as the model takes it (no batch axis).</param>
/// <param name="Labels">One label per sample.</param>
/// <param name="TeacherLogits">The teacher's logits, <paramref name="Classes"/> per sample; null when the loss has no soft term.</param>
/// <param name="Classes">Number of classes.</param>
public sealed record ScoringData(float[] Inputs, long[] SampleShape, long[] Labels, float[]? TeacherLogits, int Classes);

/// <summary>
/// First-order Taylor scores of units (Molchanov et al. 2019): removing a unit's parameters w changes the loss
/// by about -Σ w·∂L/∂w over them, so a unit scores Σ over batches of |Σ over its parameters of w·∂L/∂w|.
/// Gradients come from the imported graph in eval mode (no dropout, BatchNormalization on running statistics).
/// </summary>
public static class TaylorScores
{
    /// <summary>Scores the units of every structure on <paramref name="batches"/> seeded random batches of <paramref name="data"/>.</summary>
    public static IReadOnlyList<double[]> Compute(
        ModelProto model,
        IReadOnlyList<PrunableStructure> structures,
        ScoringData data,
        DistillationLoss loss,
        int batches,
        int batchSize,
        int seed)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(structures);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentOutOfRangeException.ThrowIfLessThan(batches, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var sampleSize = (int)data.SampleShape.Aggregate(1L, (a, b) => a * b);
        var count = data.Labels.Length;
        if (count == 0 || data.Inputs.Length != (long)count * sampleSize)
        {
            throw new ArgumentException($"{data.Inputs.Length} input values do not make {count} samples of {sampleSize}.", nameof(data));
        }

        TorchNativeLoader.EnsureLoaded();
        using var graph = TrainableGraph.Import(model);
        graph.eval();
        var parameters = graph.ParametersByName;
        var scores = structures.Select(s => new double[s.Units]).ToArray();
        var order = Enumerable.Range(0, count).ToArray();
        new Random(seed).Shuffle(order);
        var dims = model.Graph.Initializer.ToDictionary(i => i.Name, i => i.Dims.ToArray(), StringComparer.Ordinal);
        for (var b = 0; b < batches; b++)
        {
            var rows = order.Skip(b * batchSize % count).Take(batchSize).ToArray();
            using var scope = torch.NewDisposeScope();
            var x = torch.tensor(Gather(data.Inputs, rows, sampleSize), [rows.Length, .. data.SampleShape]);
            var y = torch.tensor(Gather(data.Labels, rows, 1), [rows.Length]);
            var t = data.TeacherLogits is null ? null : torch.tensor(Gather(data.TeacherLogits, rows, data.Classes), [rows.Length, data.Classes]);
            graph.zero_grad();
            loss.Compute(graph.Forward(x), y, t).backward();

            var products = new Dictionary<string, (float[] W, float[] G)>(StringComparer.Ordinal);
            for (var s = 0; s < structures.Count; s++)
            {
                var perUnit = new double[structures[s].Units];
                // Running statistics are buffers, not parameters: removing them changes nothing first-order.
                foreach (var slice in structures[s].Slices.Where(sl => parameters.ContainsKey(sl.Initializer)))
                {
                    if (!products.TryGetValue(slice.Initializer, out var pair))
                    {
                        var parameter = parameters[slice.Initializer];
                        var gradient = parameter.grad;
                        pair = (Floats(parameter), gradient is null ? new float[parameter.numel()] : Floats(gradient));
                        products[slice.Initializer] = pair;
                    }

                    StructuredPruner.AddPerUnit(perUnit, pair.W, pair.G, dims[slice.Initializer], slice);
                }

                for (var j = 0; j < perUnit.Length; j++)
                {
                    scores[s][j] += Math.Abs(perUnit[j]);
                }
            }
        }

        return scores;
    }

    private static float[] Floats(Tensor tensor) =>
        tensor.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();

    private static T[] Gather<T>(T[] source, int[] rows, int width)
    {
        var result = new T[rows.Length * width];
        for (var i = 0; i < rows.Length; i++)
        {
            Array.Copy(source, (long)rows[i] * width, result, (long)i * width, width);
        }

        return result;
    }
}
