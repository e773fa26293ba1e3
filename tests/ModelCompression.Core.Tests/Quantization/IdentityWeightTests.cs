using ModelCompression.Core.Tests.Evaluation;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using Xunit.Abstractions;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// Weights that reach their layers through Identity nodes, as PyTorch exports shared and tied parameters:
/// transformer_tied_opset13.onnx is a real nn.TransformerEncoder export whose layer 1 reads all of its weights
/// (two MatMuls, the output projection's Gemm, the feed-forward MatMuls, biases, LayerNorm parameters) through
/// Identity nodes from layer 0's initializers.
/// </summary>
[Trait("Category", "Slow")] // calibrates and runs the quantize stage on a transformer export
public sealed class IdentityWeightTests(ITestOutputHelper output)
{
    private static readonly string TiedTransformer = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "transformer_tied_opset13.onnx");

    /// <summary>The layers with a constant weight: the token table, per encoder layer the Q/K/V projection, the output projection and the two feed-forward layers, and the head.</summary>
    private static readonly string[] WeightLayers =
        ["/tok/Gather", .. new[] { 0, 1 }.SelectMany(l => new[] { "self_attn/MatMul", "self_attn/Gemm", "linear1/MatMul", "linear2/MatMul" }.Select(n => $"/encoder/layers.{l}/{n}")), "/head/Gemm"];

    /// <summary>The float initializers those layers multiply by (layer 1 reads the first four through Identity nodes).</summary>
    private static readonly string[] FloatWeights =
        ["tok.weight", "onnx::MatMul_382", "encoder.layers.0.self_attn.out_proj.weight", "onnx::MatMul_389", "onnx::MatMul_390", "head.weight"];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Dynamic_int8_quantizes_weights_behind_Identity_once_and_drops_the_float_originals(bool perChannel)
    {
        var model = OnnxModelFile.Load(TiedTransformer);

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel);
        SaturationCheck.ThrowIfUnproven(quantized, TiedTransformer);

        Assert.Equal(WeightLayers, report.QuantizedNodes);
        Assert.Equal(4, report.SkippedNodes.Count);
        Assert.All(report.SkippedNodes, s => Assert.EndsWith("(MatMul): the weight is not a constant", s, StringComparison.Ordinal));
        // One int8 matrix per float weight: layers 0 and 1 share four of them.
        Assert.Equal(5, quantized.Graph.Initializer.Count(i => i.DataType == (int)DataType.Int8 && i.Dims.Count == 2 && i.Name.EndsWith(".weight_int8", StringComparison.Ordinal)));
        AssertNoFloatCopies(model, quantized);
        AssertClose(model, quantized, "dynamic", perChannel);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Static_int8_quantizes_weights_behind_Identity_once_and_drops_the_float_originals(bool perChannel)
    {
        var model = OnnxModelFile.Load(TiedTransformer);
        var tokens = TokenModelCostTests.Tokens(64, 16, vocab: 100, classes: 4);
        var plan = StaticQuantizer.Plan(model, QuantizationScheme.Asymmetric);
        var ranges = ActivationCalibration.Collect(plan.Model, plan.TensorsToCalibrate, tokens, CalibrationMethod.MinMax, 99.99, QuantizationScheme.Asymmetric);

        var (quantized, report) = StaticQuantizer.Quantize(plan, ranges, plan.Candidates, perChannel);
        SaturationCheck.ThrowIfUnproven(quantized, TiedTransformer);

        Assert.Equal(WeightLayers, plan.Candidates);
        Assert.Equal(WeightLayers, report.QuantizedNodes);
        Assert.Equal(5, quantized.Graph.Initializer.Count(i => i.DataType == (int)DataType.Int8 && i.Name.EndsWith(".weight_int8", StringComparison.Ordinal)));
        // Each layer has its own DequantizeLinear of the shared int8 weight.
        Assert.Equal(9, quantized.Graph.Node.Count(n => n.OpType == "DequantizeLinear" && n.Output[0].EndsWith(".weight_dequantized", StringComparison.Ordinal)));
        AssertNoFloatCopies(model, quantized);
        var session = StaticQuantizerTests.SessionOps(quantized);
        Assert.DoesNotContain(session, op => op is "Gemm" or "FusedGemm");
        AssertClose(model, quantized, "static", perChannel);
    }

    [Fact]
    public void The_quantize_stage_counts_every_layer_with_a_weight_and_lists_the_float_ones()
    {
        using var dir = new TempDir();
        var tokens = TokenModelCostTests.Tokens(200, 16, vocab: 100, classes: 4);
        var context = new StageContext(Repo.SampleRecipe, RecipeLoader.Load(Repo.SampleRecipe).Teacher, tokens, tokens, "data-hash", null, null, 4, new RecordingReporter(), CancellationToken.None)
        {
            CheckpointRoot = dir.Dir("checkpoints"),
        };
        var options = new QuantizeOptions { PerChannel = true, Sensitivity = false, SensitivitySamples = 100, LatencyRuns = 1, LatencyThreads = [1], LatencyBatchSizes = [1] };

        var result = new QuantizeStage(options).Run(context, TiedTransformer, dir.File("int8.onnx"));

        output.WriteLine(result.Summary);
        // 14 MatMul, Gemm and lookup layers: the 10 with a constant weight (layer 1's through Identity nodes) are
        // int8; the 4 attention products are float, with the reason.
        Assert.Contains("10/14 layers quantized, left float: /encoder/layers.0/self_attn/MatMul_1 (MatMul): the weight is not a constant;", result.Summary, StringComparison.Ordinal);
        Assert.Equal(string.Join(", ", WeightLayers), result.Details["quantized"]);
        Assert.Equal("128 (/encoder/layers.0/self_attn/MatMul.MatMulInteger)", result.Details["max_pair_sum"]);
        AssertNoFloatCopies(OnnxModelFile.Load(TiedTransformer), OnnxModelFile.Load(dir.File("int8.onnx")));
    }

    [Fact]
    public void A_chain_of_Identities_and_two_readers_share_one_int8_weight_and_a_float_reader_keeps_the_original()
    {
        // w -> Identity -> Identity -> MatMul b; w -> Identity -> MatMul a; the Identity's copy is also a graph output,
        // which must stay float.
        var random = new Random(4);
        var model = new GraphBuilder("chain")
            .Input("x", DataType.Float, "batch", 8)
            .Initializer("w", [.. Enumerable.Range(0, 64).Select(_ => (float)(random.NextDouble() - 0.5))], [8, 8])
            .Node("Identity", ["w"], ["w1"], "alias1", "")
            .Node("Identity", ["w1"], ["w2"], "alias2", "")
            .Node("MatMul", ["x", "w1"], ["h"], "a", "")
            .Node("MatMul", ["h", "w2"], ["y"], "b", "")
            .Output("y", DataType.Float, "batch", 8)
            .Build();

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel: true);
        var exported = model.Clone();
        exported.Graph.Output.Add(new ValueInfoProto { Name = "w1" });
        var (kept, _) = DynamicQuantizer.Quantize(exported, perChannel: true);
        SaturationCheck.ThrowIfUnproven(quantized, "chain");
        SaturationCheck.ThrowIfUnproven(kept, "chain");

        Assert.Equal(["a", "b"], report.QuantizedNodes);
        Assert.DoesNotContain(quantized.Graph.Node, n => n.OpType == "Identity");
        Assert.Equal(["a.weight_int8", "a.weight_scale", "a.weight_zero_point"], quantized.Graph.Initializer.Select(i => i.Name).Order(StringComparer.Ordinal));
        Assert.Equal(2, quantized.Graph.Node.Count(n => n.OpType == "MatMulInteger" && n.Input[1] == "a.weight_int8"));
        // A graph output still needs the float value: alias1 and w stay; alias2, read only by b, goes.
        Assert.Equal(["alias1"], kept.Graph.Node.Where(n => n.OpType == "Identity").Select(n => n.Name));
        Assert.Contains(kept.Graph.Initializer, i => i.Name == "w" && i.DataType == (int)DataType.Float);
    }

    /// <summary>
    /// No float weight a quantized layer was made from is left, nor an Identity that only passed it on; the int8
    /// weights hold each float weight's elements once; and the parameter count grew only by scales, zero points
    /// and (static) int32 biases: a bias's int32 form depends on its layer's input scale, so two layers that share
    /// a float bias get one each.
    /// </summary>
    private void AssertNoFloatCopies(ModelProto model, ModelProto quantized)
    {
        var names = quantized.Graph.Initializer.Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        Assert.All(FloatWeights, w => Assert.DoesNotContain(w, names));
        var identities = quantized.Graph.Node.Where(n => n.OpType == "Identity").Select(n => n.Input[0]).ToList();
        Assert.All(FloatWeights, w => Assert.DoesNotContain(w, identities));
        Assert.Equal(
            model.Graph.Initializer.Where(i => FloatWeights.Contains(i.Name)).Sum(TensorData.ElementCount),
            quantized.Graph.Initializer.Where(i => i.DataType == (int)DataType.Int8 && i.Name.EndsWith("_int8", StringComparison.Ordinal)).Sum(TensorData.ElementCount));
        var (before, _) = ParameterCount.Count(model);
        var (after, _) = ParameterCount.Count(quantized);
        var scalesAndZeroPoints = quantized.Graph.Initializer.Where(i => i.Name.EndsWith("scale", StringComparison.Ordinal) || i.Name.EndsWith("zero_point", StringComparison.Ordinal)).Sum(TensorData.ElementCount);
        var int32Biases = quantized.Graph.Initializer.Where(i => i.DataType == (int)DataType.Int32).Sum(TensorData.ElementCount);
        output.WriteLine($"parameters {before} -> {after}, of which {scalesAndZeroPoints} scales and zero points and {int32Biases} int32 bias values");
        Assert.True(after - scalesAndZeroPoints - int32Biases <= before, $"parameters {before} -> {after}");
    }

    private void AssertClose(ModelProto model, ModelProto quantized, string mode, bool perChannel)
    {
        var tokens = TokenModelCostTests.Tokens(64, 16, vocab: 100, classes: 4);
        var (expected, actual) = (Logits(model, tokens), Logits(quantized, tokens));
        var scale = expected.Max(MathF.Abs);
        var worst = expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        output.WriteLine($"{mode} per_channel={perChannel}: max |float - int8| = {worst}, output scale {scale}");
        Assert.True(worst <= 0.05 * scale, $"max |float - int8| = {worst}, output scale {scale}");
    }

    private static float[] Logits(ModelProto model, Dataset tokens)
    {
        using var runner = OnnxRunner.FromModel(model, "model", threads: 1);
        return runner.Run(tokens, 16);
    }
}
