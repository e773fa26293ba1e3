using ModelCompression.Core.Tests.Data;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Pipeline;
using ModelCompression.Pruning;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using Xunit.Abstractions;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// Every stage's output goes through dead-code elimination. The student is the BERT-style encoder exported by real
/// PyTorch (tests/fixtures/pytorch/bert_opset13.onnx): the exporter shares its LayerNorm weights through Identity
/// nodes, so dropping a layer leaves the Identity nodes that fed it with nothing reading them.
/// </summary>
[Trait("Category", "Slow")] // runs whole pipelines
public sealed class DeadCodeAfterStagesTests(ITestOutputHelper output) : IDisposable
{
    private const int Tokens = 16;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("bert_opset13.onnx", 4)] // written as Hugging Face writes BERT: LayerNorm weights shared through Identity
    [InlineData("bert_opset17.onnx", 4)]
    [InlineData("transformer_opset13.onnx", 0)] // nn.TransformerEncoder
    [InlineData("transformer_opset17.onnx", 0)]
    public void Dropping_a_layer_of_a_PyTorch_export_leaves_no_dead_node_and_the_outputs_do_not_change(string exported, int deadIdentities)
    {
        var fixture = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", exported);
        File.Copy(fixture, _dir.File("student.onnx"));
        WriteData();
        var recipe = _dir.Write("drop.compress.yaml", Data + """

            student: { model: student.onnx }
            stages:
              - prune: { method: layers, keep_layers: [0], recovery_epochs: 0 }
              - evaluate: { measure_latency: false }
            outputs: { model: dropped.onnx, report: [json] }
            """);
        var reporter = new RecordingReporter();

        var result = CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Path, reporter));

        var pruned = OnnxModelFile.Load(result.OutputModel!);
        // What the layer drop alone leaves: the Identity nodes that fed layer 1's LayerNorms, read by nothing.
        var dropped = TransformerLayerDropper.Drop(OnnxModelFile.Load(fixture), [1]);
        var deadBefore = Dead(dropped);
        var removed = DeadCode.Eliminate(dropped.Clone());
        output.WriteLine($"{exported}: after the layer drop alone {deadBefore.Count} dead nodes ({string.Join(", ", deadBefore.Select(n => $"{n.Name} ({n.OpType})"))}), {removed}; removed by the pipeline: {Details(result.Stages[0].Result)}");
        Assert.Equal(deadIdentities, deadBefore.Count(n => n.OpType == "Identity"));
        Assert.Empty(Dead(pruned));
        Assert.True(DeadCode.Eliminate(pruned.Clone()).IsEmpty);
        Assert.Equal(dropped.Graph.Node.Count - removed.Nodes, pruned.Graph.Node.Count);
        if (!removed.IsEmpty)
        {
            Assert.Equal(removed.Nodes.ToString(System.Globalization.CultureInfo.InvariantCulture), result.Stages[0].Result.Details["dead_nodes_removed"]);
            Assert.Contains(reporter.Infos, i => i.StartsWith($"prune: removed {removed.Nodes} dead nodes", StringComparison.Ordinal));
        }

        Assert.Equal(["input_ids", "attention_mask"], pruned.Graph.Input.Select(i => i.Name));
        // Identical outputs: removing what nothing reads changes no value.
        var inputs = TokenInputs(batch: 4, seed: 5);
        Assert.Equal(RunOrt(dropped, inputs).Values, RunOrt(pruned, inputs).Values);
    }

    [Fact]
    public void Quantizing_leaves_no_float_weight_alive_only_for_a_dead_node()
    {
        // A student whose MatMul weights are also read by nodes nothing reads (left behind by an earlier edit). They
        // are Neg, not Identity: the quantizer follows Identity aliases itself, so only dead-code elimination can
        // see that these readers are dead. Dynamic quantization replaces every MatMul weight by an int8 one; without
        // dead-code elimination the float originals would live on for the dead readers alone.
        var fixture = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "bert_opset13.onnx");
        var student = OnnxModelFile.Load(fixture);
        var initializers = student.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var weights = student.Graph.Node.Where(n => n.OpType == "MatMul" && initializers.ContainsKey(n.Input[1])).Select(n => n.Input[1]).Distinct().ToList();
        foreach (var weight in weights)
        {
            student.Graph.Node.Add(new NodeProto { OpType = "Neg", Name = $"dead_reader_of_{weight}", Input = { weight }, Output = { $"dead_reader_of_{weight}_out" } });
        }

        OnnxModelFile.Save(student, _dir.File("student.onnx"));
        WriteData();
        var recipe = _dir.Write("quantize.compress.yaml", Data + """

            student: { model: student.onnx }
            stages:
              - quantize: { mode: dynamic, latency_runs: 1, latency_batch_sizes: [8], latency_threads: [1] }
              - evaluate: { measure_latency: false }
            outputs: { model: quantized.onnx, report: [json] }
            """);

        var result = CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Path, new RecordingReporter()));

        var quantized = OnnxModelFile.Load(result.OutputModel!);
        var floatBytes = weights.Sum(w => TensorData.GetBytes(initializers[w]).Length);
        output.WriteLine($"{weights.Count} MatMul weights ({floatBytes} float bytes) read by dead Neg nodes; removed: {Details(result.Stages[0].Result)}");
        Assert.True(weights.Count >= 8, $"{weights.Count} MatMul weights");
        Assert.Equal("dynamic", result.Stages[0].Result.Details["mode"]);
        Assert.Empty(Dead(quantized));
        Assert.DoesNotContain(quantized.Graph.Node, n => n.Name.StartsWith("dead_reader_of_", StringComparison.Ordinal));
        Assert.DoesNotContain(quantized.Graph.Initializer, i => weights.Contains(i.Name));
        Assert.Equal(weights.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), result.Stages[0].Result.Details["dead_initializers_removed"]);
        Assert.Equal(floatBytes.ToString(System.Globalization.CultureInfo.InvariantCulture), result.Stages[0].Result.Details["dead_initializer_bytes_removed"]);
    }

    private const string Data = """
        data:
          format: npy
          train: { inputs: { input_ids: ids-train.npy, attention_mask: mask-train.npy }, labels: labels-train.npy }
          test:  { inputs: { input_ids: ids-test.npy, attention_mask: mask-test.npy }, labels: labels-test.npy }
        """;

    /// <summary>Nodes none of whose outputs a node or a graph output reads (the main graph).</summary>
    private static List<NodeProto> Dead(ModelProto model)
    {
        var read = model.Graph.Node.SelectMany(n => n.Input).Concat(model.Graph.Output.Select(o => o.Name)).ToHashSet(StringComparer.Ordinal);
        return [.. model.Graph.Node.Where(n => !n.Output.Any(read.Contains))];
    }

    private static string Details(ModelCompression.Stages.StageResult result) =>
        string.Join(", ", result.Details.Where(d => d.Key.StartsWith("dead_", StringComparison.Ordinal)).Select(d => $"{d.Key} {d.Value}"));

    /// <summary>Token ids of the fixture's 100-word vocabulary, masks with some padding, three classes.</summary>
    private void WriteData()
    {
        foreach (var (split, count, seed) in new[] { ("train", 48, 1), ("test", 24, 2) })
        {
            var (ids, mask) = Tokens16(count, seed);
            Npy.WriteLongs(_dir.File($"ids-{split}.npy"), ids, count, Tokens);
            Npy.WriteLongs(_dir.File($"mask-{split}.npy"), mask, count, Tokens);
            Npy.WriteLongs(_dir.File($"labels-{split}.npy"), [.. Enumerable.Range(0, count).Select(i => (long)(i % 3))], count);
        }
    }

    private static (long[] Ids, long[] Mask) Tokens16(int count, int seed)
    {
        var random = new Random(seed);
        var ids = new long[count * Tokens];
        var mask = new long[count * Tokens];
        for (var s = 0; s < count; s++)
        {
            var length = random.Next(4, Tokens + 1);
            for (var t = 0; t < length; t++)
            {
                ids[(s * Tokens) + t] = random.Next(1, 100);
                mask[(s * Tokens) + t] = 1;
            }
        }

        return (ids, mask);
    }

    private static Dictionary<string, (Array Data, long[] Shape)> TokenInputs(int batch, int seed)
    {
        var (ids, mask) = Tokens16(batch, seed);
        return new() { ["input_ids"] = (ids, [batch, Tokens]), ["attention_mask"] = (mask, [batch, Tokens]) };
    }
}
