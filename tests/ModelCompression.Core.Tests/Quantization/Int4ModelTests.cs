using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Evaluation;
using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using Xunit.Abstractions;
using static ModelCompression.Core.Tests.Quantization.Int4QuantizerTests;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// Int4 on whole models: a small decoder-shaped graph with a tied output head (the form the built-in decoder
/// uses: MatMul(x, Transpose(embedding table))) and the built-in transformer encoder classifier.
/// </summary>
public sealed class Int4ModelTests(ITestOutputHelper output)
{
    internal const int Vocab = 96, Width = 64, Hidden = 128, Batch = 2, Sequence = 5;

    private static readonly string[] TransformerLayers =
    [
        "embedding",
        "encoder.layer0.attention.query.matmul", "encoder.layer0.attention.key.matmul", "encoder.layer0.attention.value.matmul",
        "encoder.layer0.attention.output.matmul", "encoder.layer0.feed_forward.fc1.matmul", "encoder.layer0.feed_forward.fc2.matmul",
        "classifier",
    ];

    [Theory]
    [InlineData(32, true)]
    [InlineData(128, false)]
    public void A_tied_head_is_packed_from_the_table_and_the_lookup_gets_its_own_int8_table(int blockSize, bool symmetric)
    {
        var model = Decoder();

        var (quantized, report) = Int4Quantizer.Quantize(model, blockSize, symmetric);

        Assert.Equal(["embed", "mlp.up", "mlp.down", "head"], report.QuantizedNodes);
        Assert.Empty(report.SkippedNodes);
        var head = quantized.Graph.Node.Single(n => n.Name == "head");
        Assert.Equal("MatMulNBits", head.OpType);
        Assert.Equal((Width, Vocab), (Attribute(head, "K"), Attribute(head, "N")));
        // The head is packed straight from the table's rows: unpacked, it is the table transposed, within a step.
        var table = TensorData.ToFloats(model.Graph.Initializer.Single(i => i.Name == "embedding.weight"));
        var (headWeight, scales, _) = Unpack(quantized, head, Width, Vocab, blockSize);
        for (var v = 0; v < Vocab; v++)
        {
            for (var d = 0; d < Width; d++)
            {
                Assert.True(MathF.Abs(headWeight[(d * Vocab) + v] - table[(v * Width) + d]) <= MathF.Abs(scales[(v * ((Width + blockSize - 1) / blockSize)) + (d / blockSize)]) + 1e-6f);
            }
        }

        // The lookup reads an int8 table, and no float copy of the table, nor its Transpose, is left.
        var gather = quantized.Graph.Node.Single(n => n.Name == "embed");
        Assert.Equal(DataType.Int8, (DataType)Initializer(quantized, gather.Input[0]).DataType);
        Assert.DoesNotContain(quantized.Graph.Initializer, i => i.Name == "embedding.weight");
        Assert.DoesNotContain(quantized.Graph.Node, n => n.OpType == "Transpose");
        OnnxChecker.ThrowIfInvalid(quantized);

        // What the head costs: Vocab columns x blocks x (blob + a float scale) (+ packed zero points).
        var blocks = (Width + blockSize - 1) / blockSize;
        var headBytes = (Vocab * blocks * blockSize / 2) + (Vocab * blocks * 4) + (symmetric ? 0 : Vocab * ((blocks + 1) / 2));
        var headWeightReport = report.Weights.Single(w => w.Nodes.SequenceEqual(["head"]));
        Assert.Equal((headBytes, Vocab * Width * 4L), (headWeightReport.Bytes, headWeightReport.FloatBytes));
        output.WriteLine($"block {blockSize} {(symmetric ? "symmetric" : "asymmetric")}: the tied head costs {headBytes} bytes in 4 bits (the table: {Vocab * Width * 4} bytes float, {Vocab * Width} int8 for the lookup)");

        // The initializers shrink as the layout says: 4-bit blocks for the three MatMuls, int8 + one scale for the table.
        var floatBytes = Bytes(model);
        var expected = report.Weights.Sum(w => w.Bytes) + (Vocab * Width) + 4 + 1;
        Assert.Equal(expected, Bytes(quantized));
        output.WriteLine($"initializer bytes {floatBytes} -> {Bytes(quantized)} ({(double)Bytes(quantized) / floatBytes:0.000}x); file {model.ToByteArray().Length} -> {quantized.ToByteArray().Length} bytes");

        // The logits stay near the float model's.
        var ids = Ids();
        var (reference, actual) = (Logits(model, ids), Logits(quantized, ids));
        var worst = reference.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        output.WriteLine($"max |float - int4| {worst}, logit scale {reference.Max(MathF.Abs)}");
        Assert.True(worst <= 0.1f * reference.Max(MathF.Abs), $"max |float - int4| = {worst}, logit scale {reference.Max(MathF.Abs)}");
    }

    [Fact]
    public void A_tied_head_left_float_keeps_the_table_float_for_the_lookup_too()
    {
        var model = Decoder();

        var (quantized, report) = Int4Quantizer.Quantize(model, 32, symmetric: true, n => n.Name != "head");

        Assert.Equal(["mlp.up", "mlp.down"], report.QuantizedNodes);
        Assert.Equal(["head (MatMul): excluded", "embed (Gather): the table is shared with other nodes"], report.SkippedNodes);
        Assert.Contains(quantized.Graph.Initializer, i => i.Name == "embedding.weight" && i.DataType == (int)DataType.Float);
        Assert.Equal("Transpose", quantized.Graph.Node.Single(n => n.Output[0] == quantized.Graph.Node.Single(h => h.Name == "head").Input[1]).OpType);
    }

    [Fact]
    public void The_transformer_encoder_classifier_is_quantized_on_three_dimensional_activations_and_stays_close()
    {
        var model = ArchitectureRegistry.Build(
            "transformer",
            new TransformerOptions { Width = 32, Heads = 2, Layers = 1, FeedForward = 64, MaxLength = 12, Dropout = 0 },
            new ArchitectureInputs([12], 3, 50));
        var tokens = TokenModelCostTests.Tokens(32, 12);

        var (quantized, report) = Int4Quantizer.Quantize(model, 32, symmetric: true);

        Assert.Equal(TransformerLayers, report.QuantizedNodes);
        Assert.Equal(
            ["encoder.layer0.attention.scores (MatMul): the weight is not a constant", "encoder.layer0.attention.context (MatMul): the weight is not a constant"],
            report.SkippedNodes);
        Assert.Equal(7, quantized.Graph.Node.Count(n => n.OpType == "MatMulNBits"));
        // The classifier Gemm (transB) keeps its bias as MatMulNBits' bias input.
        var classifier = quantized.Graph.Node.Single(n => n.Name == "classifier");
        Assert.Equal(6, classifier.Input.Count);
        var session = OnnxRunner.SessionGraph(quantized, "int4 transformer", Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED);
        Assert.Equal(7, session.Graph.Node.Count(n => n.OpType == "MatMulNBits"));

        var (reference, actual) = (Logits(model, tokens), Logits(quantized, tokens));
        var worst = reference.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        output.WriteLine($"transformer: max |float - int4| {worst}, logit scale {reference.Max(MathF.Abs)}; file {model.ToByteArray().Length} -> {quantized.ToByteArray().Length} bytes");
        // Untrained Gaussian weights: a block of 32 has 16 levels over about +-2.5 standard deviations, which puts
        // about 9% noise on each layer's output; through the encoder's six products it measured 10.5% of the scale.
        Assert.True(worst <= 0.15f * reference.Max(MathF.Abs), $"max |float - int4| = {worst}");
    }

    [Fact]
    public void Sensitivity_and_keep_sensitive_float_work_on_int4_layers()
    {
        var model = Decoder();
        var ids = Ids();
        // Labels: the float model's own next-token choices at the last position, so the float accuracy is 1.
        var logits = Logits(model, ids);
        long[] labels = [.. Enumerable.Range(0, ids.Count).Select(i => (long)ModelCompression.Evaluation.ModelEvaluation.ArgMax(logits.AsSpan((((i * Sequence) + Sequence - 1) * Vocab), Vocab)))];
        var slice = new CheckSlice(LastPosition(model), Ids(labels));
        var layers = Int4Quantizer.Quantize(model, 32, true).Report.QuantizedNodes;
        ModelProto Quantize(IReadOnlyCollection<string> chosen) => LastPosition(Int4Quantizer.Quantize(model, 32, true, n => chosen.Contains(n.Name)).Model);

        var sensitivity = SensitivityAnalysis.Measure(layers, Quantize, slice);
        // No drop is acceptable: every layer goes back to float until the quantized model agrees completely.
        var selection = SensitivityAnalysis.KeepSensitiveFloat(layers, sensitivity, Quantize, slice, maxAccuracyDrop: -1);

        Assert.Equal(layers.Order(), sensitivity.Select(s => s.Node).Order());
        Assert.All(sensitivity, s => Assert.InRange(s.Agreement, 0, 1));
        Assert.Equal(1.0, slice.FloatAccuracy);
        Assert.Empty(selection.Quantized);
        Assert.Equal(sensitivity.Select(s => s.Node), selection.KeptFloat);
        Assert.DoesNotContain(selection.Model.Graph.Node, n => n.OpType == "MatMulNBits");
    }

    /// <summary>
    /// input_ids [batch, sequence] -> Gather(table [Vocab, Width]) -> x; h = x + MatMul(Relu(MatMul(x, up)), down);
    /// logits = MatMul(h, Transpose(table)) [batch, sequence, Vocab].
    /// </summary>
    internal static ModelProto Decoder()
    {
        var table = Weight(Vocab, Width, seed: 21).Select(v => v * 0.2f).ToArray();
        return new GraphBuilder()
            .Opset(17)
            .Input("input_ids", DataType.Int64, "batch", "sequence")
            .Output("logits", DataType.Float, "batch", "sequence", Vocab)
            .Initializer("embedding.weight", table, [Vocab, Width])
            .Initializer("mlp.up.weight", Weight(Width, Hidden, seed: 22).Select(v => v * 0.05f).ToArray(), [Width, Hidden])
            .Initializer("mlp.down.weight", Weight(Hidden, Width, seed: 23).Select(v => v * 0.05f).ToArray(), [Hidden, Width])
            .Node(GraphEdit.Node("Gather", "embed", ["embedding.weight", "input_ids"], ["x"]))
            .Node(GraphEdit.Node("MatMul", "mlp.up", ["x", "mlp.up.weight"], ["up"]))
            .Node(GraphEdit.Node("Relu", "mlp.relu", ["up"], ["relu"]))
            .Node(GraphEdit.Node("MatMul", "mlp.down", ["relu", "mlp.down.weight"], ["down"]))
            .Node(GraphEdit.Node("Add", "residual", ["x", "down"], ["h"]))
            .Node(GraphEdit.Node("Transpose", "tied", ["embedding.weight"], ["embedding.weight.T"], Attr.Ints("perm", 1, 0)))
            .Node(GraphEdit.Node("MatMul", "head", ["h", "embedding.weight.T"], ["logits"]))
            .Build();
    }

    /// <summary>The model with the logits of the last position as its output ([batch, Vocab]), for the check slice's classes.</summary>
    private static ModelProto LastPosition(ModelProto model)
    {
        var copy = model.Clone();
        var graph = copy.Graph;
        graph.Output[0].Name = "all_logits";
        foreach (var node in graph.Node)
        {
            for (var i = 0; i < node.Output.Count; i++)
            {
                node.Output[i] = node.Output[i] == "logits" ? "all_logits" : node.Output[i];
            }
        }

        graph.Initializer.Add(TensorData.FromInt64s("last", [-1], []));
        graph.Node.Add(GraphEdit.Node("Gather", "last_position", ["all_logits", "last"], ["logits"], Attr.Int("axis", 1)));
        graph.Output[0].Name = "logits";
        graph.Output[0].Type.TensorType.Shape.Dim.RemoveAt(1);
        return copy;
    }

    internal static Dataset Ids(long[]? labels = null)
    {
        var random = new Random(3);
        long[] ids = [.. Enumerable.Range(0, 24 * Sequence).Select(_ => (long)random.Next(Vocab))];
        return new Dataset([DataTensor.FromInt64("input_ids", ids, [Sequence])], labels, "token ids");
    }

    /// <summary>The model's first output on every sample: a classifier's logits, or a decoder's [batch, sequence, vocabulary] logits, flattened.</summary>
    internal static float[] Logits(ModelProto model, Dataset data)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        using var runOptions = new RunOptions();
        var result = new List<float>();
        var length = (int)data.Tensors[0].SampleShape.Aggregate(1L, (a, b) => a * b);
        for (var start = 0; start < data.Count; start += Batch)
        {
            var count = Math.Min(Batch, data.Count - start);
            var inputs = data.Tensors.Select(t =>
            {
                var values = new long[count * length];
                t.CopyRange(start, count, values);
                return OrtValue.CreateTensorValueFromMemory(values, [count, .. t.SampleShape]);
            }).ToList();
            using var outputs = session.Run(runOptions, [.. data.Tensors.Select(t => t.Name)], inputs, [session.OutputNames[0]]);
            result.AddRange(outputs[0].GetTensorDataAsSpan<float>().ToArray());
            inputs.ForEach(i => i.Dispose());
        }

        return [.. result];
    }

    private static long Attribute(NodeProto node, string name) => node.Attribute.Single(a => a.Name == name).I;

    private static long Bytes(ModelProto model) => model.Graph.Initializer.Sum(i => TensorData.GetBytes(i).Length);
}
