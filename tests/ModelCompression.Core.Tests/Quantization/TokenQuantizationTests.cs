using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Evaluation;
using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// The quantizers on models that take token ids: only float activations are calibrated, the ids and the
/// embedding Gather's indices stay int64, and the token table becomes int8 where nothing else reads it.
/// </summary>
public sealed class TokenQuantizationTests
{
    private static readonly string PyTorchTransformer = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "transformer_opset17.onnx");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Static_int8_of_the_PyTorch_transformer_calibrates_float_activations_only_and_stays_close(bool perChannel)
    {
        var model = OnnxModelFile.Load(PyTorchTransformer);
        var tokens = TokenModelCostTests.Tokens(64, 16, vocab: 100, classes: 4);

        var plan = StaticQuantizer.Plan(model, QuantizationScheme.Asymmetric);
        var ranges = ActivationCalibration.Collect(plan.Model, plan.TensorsToCalibrate, tokens, CalibrationMethod.MinMax, 99.99, QuantizationScheme.Asymmetric);
        var (quantized, report) = StaticQuantizer.Quantize(plan, ranges, plan.Candidates, perChannel);
        SaturationCheck.ThrowIfUnproven(quantized, PyTorchTransformer);

        // The token table's Gather; per layer the joint Q/K/V projection (MatMul), the output projection (Gemm)
        // and the two feed-forward layers; the head. The attention products have no constant weight.
        var lookup = plan.Model.Graph.Node.Single(n => n.OpType == "Gather" && n.Input[1] == "input_ids");
        Assert.Equal("/tok/Gather", lookup.Name);
        Assert.Equal(
            ["/tok/Gather", .. new[] { 0, 1 }.SelectMany(l => new[] { "self_attn/MatMul", "self_attn/Gemm", "linear1/MatMul", "linear2/MatMul" }.Select(n => $"/encoder/layers.{l}/{n}")), "/head/Gemm"],
            report.QuantizedNodes);
        Assert.Equal(4, plan.Skipped.Count(s => s.EndsWith("(MatMul): the weight is not a constant", StringComparison.Ordinal)));
        Assert.DoesNotContain("input_ids", plan.TensorsToCalibrate);
        Assert.DoesNotContain("attention_mask", plan.TensorsToCalibrate);
        var gather = quantized.Graph.Node.Single(n => n.Name == lookup.Name);
        Assert.Equal("input_ids", gather.Input[1]);
        Assert.Equal(DataType.Int8, (DataType)quantized.Graph.Initializer.Single(i => i.Name == gather.Input[0]).DataType);
        OnnxChecker.ThrowIfInvalid(quantized);

        var (expected, actual) = (Logits(model, tokens), Logits(quantized, tokens));
        var scale = expected.Max(MathF.Abs);
        var worst = expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        Assert.True(worst <= 0.05 * scale, $"max |float - int8| = {worst}, output scale {scale}");
    }

    [Fact]
    public void Dynamic_int8_of_the_PyTorch_transformer_quantizes_its_token_table_and_stays_close()
    {
        var model = OnnxModelFile.Load(PyTorchTransformer);
        var tokens = TokenModelCostTests.Tokens(64, 16, vocab: 100, classes: 4);

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel: true);
        SaturationCheck.ThrowIfUnproven(quantized, PyTorchTransformer);

        var lookup = model.Graph.Node.Single(n => n.OpType == "Gather" && n.Input[1] == "input_ids");
        Assert.Contains(lookup.Name, report.QuantizedNodes);
        Assert.DoesNotContain(quantized.Graph.Initializer, i => i.Name == lookup.Input[0]);
        var (expected, actual) = (Logits(model, tokens), Logits(quantized, tokens));
        var worst = expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        Assert.True(worst <= 0.05 * expected.Max(MathF.Abs), $"max |float - int8| = {worst}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Dynamic_int8_quantizes_the_built_in_transformers_products_on_three_dimensional_activations_within_the_AVX2_bound(bool perChannel)
    {
        // The encoder's projections multiply [batch, sequence, width] activations: DynamicQuantizeLinear takes one
        // scale over the whole 3-D tensor and MatMulInteger broadcasts the 2-D weight over the batch.
        var model = ArchitectureRegistry.Build(
            "transformer",
            new TransformerOptions { Width = 32, Heads = 2, Layers = 2, FeedForward = 64, MaxLength = 12, Dropout = 0 },
            new ArchitectureInputs([12], 3, 50));
        var tokens = TokenModelCostTests.Tokens(32, 12);

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel);

        string[] products = ["attention.query.matmul", "attention.key.matmul", "attention.value.matmul", "attention.output.matmul", "feed_forward.fc1.matmul", "feed_forward.fc2.matmul"];
        Assert.Equal(["embedding", .. new[] { 0, 1 }.SelectMany(l => products.Select(p => $"encoder.layer{l}.{p}")), "classifier"], report.QuantizedNodes);
        Assert.Equal(13, quantized.Graph.Node.Count(n => n.OpType == "MatMulInteger"));
        // Target any: every int8 layer is proven not to saturate the int16 pair sums of AVX2-only CPUs, so the
        // model computes the same on every x86-64 CPU; ONNX Runtime fuses each chain into its 3-D-capable kernel.
        var bounds = SaturationCheck.Analyze(quantized);
        Assert.Equal(13, bounds.Count);
        Assert.All(bounds, b => Assert.True(b.Proven && b.MaxPairSum <= SaturationCheck.MaxPairSum, $"{b.Layer}: {b.MaxPairSum}"));
        var session = OnnxRunner.SessionGraph(quantized, "int8 transformer", Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED);
        Assert.Equal(13, session.Graph.Node.Count(n => n.OpType is "DynamicQuantizeMatMul" or "MatMulIntegerToFloat"));

        var (expected, actual) = (Logits(model, tokens), Logits(quantized, tokens));
        var worst = expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        Assert.True(worst <= 0.03 * expected.Max(MathF.Abs), $"max |float - int8| = {worst}, output scale {expected.Max(MathF.Abs)}");
    }

    [Fact]
    public void Calibration_refuses_an_integer_tensor()
    {
        var model = Transformer();
        var tokens = TokenModelCostTests.Tokens(8, 12);

        var error = Assert.Throws<ArgumentException>(() =>
            ActivationCalibration.Collect(model, ["input_ids"], tokens, CalibrationMethod.MinMax, 99.99, QuantizationScheme.Asymmetric));

        Assert.Contains("'input_ids' is not a float value", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_token_table_another_node_reads_stays_float()
    {
        // A tied output projection reads the embedding table too: an int8 table would need a float copy for it.
        var model = Transformer();
        model.Graph.Node.Add(new NodeProto { OpType = "Transpose", Name = "tied_projection", Input = { "embedding.weight" }, Output = { "tied_projection" } });

        var (dynamicModel, dynamicReport) = DynamicQuantizer.Quantize(model, perChannel: true);
        SaturationCheck.ThrowIfUnproven(dynamicModel, "transformer");
        var plan = StaticQuantizer.Plan(model, QuantizationScheme.Asymmetric);

        Assert.Contains("embedding (Gather): the table is shared with other nodes", dynamicReport.SkippedNodes);
        Assert.Contains("embedding (Gather): the table is shared with other nodes", plan.Skipped);
        Assert.DoesNotContain("embedding", plan.Candidates);
        Assert.Equal(DataType.Float, (DataType)dynamicModel.Graph.Initializer.Single(i => i.Name == "embedding.weight").DataType);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void An_int8_token_table_dequantizes_to_within_half_a_step_of_the_float_one(bool perChannel)
    {
        var model = Transformer();
        var table = TensorData.ToFloats(model.Graph.Initializer.Single(i => i.Name == "embedding.weight"));
        var plan = StaticQuantizer.Plan(model, QuantizationScheme.Asymmetric);

        var (quantized, _) = StaticQuantizer.Quantize(plan, new Dictionary<string, (float, float)>(), ["embedding"], perChannel);
        SaturationCheck.ThrowIfUnproven(quantized, "transformer");

        var gather = quantized.Graph.Node.Single(n => n.Name == "embedding");
        var dequantize = quantized.Graph.Node.Single(n => n.OpType == "DequantizeLinear" && n.Input[0] == gather.Output[0]);
        // The readers of the lookup's output are untouched: the DequantizeLinear writes the name the Gather wrote.
        Assert.Equal(model.Graph.Node.Single(n => n.Name == "embedding").Output[0], dequantize.Output[0]);
        var values = TensorData.ToInt8s(quantized.Graph.Initializer.Single(i => i.Name == gather.Input[0]));
        var scales = TensorData.ToFloats(quantized.Graph.Initializer.Single(i => i.Name == dequantize.Input[1]));
        Assert.Equal(perChannel ? 16 : 1, scales.Length);
        for (var i = 0; i < table.Length; i++)
        {
            var scale = scales[perChannel ? i % 16 : 0];
            Assert.True(Math.Abs((values[i] * scale) - table[i]) <= (scale / 2) + 1e-7, $"value {i}: {values[i]} * {scale} vs {table[i]}");
        }

        var tokens = TokenModelCostTests.Tokens(16, 12);
        var (expected, actual) = (Logits(model, tokens), Logits(quantized, tokens));
        Assert.True(expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max() <= 0.02 * expected.Max(MathF.Abs));
    }

    private static ModelProto Transformer() =>
        ArchitectureRegistry.Build(
            "transformer",
            new TransformerOptions { Width = 16, Heads = 2, Layers = 1, FeedForward = 32, MaxLength = 12, Dropout = 0 },
            new ArchitectureInputs([12], 3, 50));

    private static float[] Logits(ModelProto model, Dataset tokens)
    {
        using var runner = OnnxRunner.FromModel(model, "model", threads: 1);
        return runner.Run(tokens, 16);
    }
}
