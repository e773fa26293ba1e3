using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

public sealed class Float16ConverterTests
{
    [Fact]
    public void Mlp_stores_every_weight_as_float16_keeps_float32_inputs_and_outputs_and_agrees()
    {
        var model = ArchitectureRegistry.Build("mlp", new MlpOptions { Hidden = [32] }, new ArchitectureInputs([28, 28], 10));
        var before = model.ToByteArray();

        var (converted, report) = Float16Converter.Convert(model);

        Assert.Equal(before, model.ToByteArray());
        Assert.Equal(4, report.Float16Initializers);
        Assert.DoesNotContain(converted.Graph.Initializer, i => i.DataType == (int)DataType.Float);
        Assert.Equal((int)DataType.Float, converted.Graph.Input.Single().Type.TensorType.ElemType);
        Assert.Equal((int)DataType.Float, converted.Graph.Output.Single().Type.TensorType.ElemType);
        Assert.Equal(model.Graph.Node.Count, report.Float16Nodes.Count + report.Float32Nodes.Count);
        Assert.InRange(converted.CalculateSize(), 0.45 * model.CalculateSize(), 0.55 * model.CalculateSize());
        AssertNodesRunWhereReported(converted, report);

        var data = StaticQuantizerTests.Images(64, seed: 9);
        var (expected, actual) = (Run(model, data), Run(converted, data));
        var scale = expected.Max(MathF.Abs);
        Assert.True(expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max() <= 0.01f * scale);
    }

    [Fact]
    public void LayerNormalizations_compute_in_float16_and_their_float32_neighbours_get_casts()
    {
        // ONNX Runtime's CPU provider (1.31, 1.32) has a float16 LayerNormalization kernel. Two in a row stay float16;
        // the MatMul and Add after them run wherever the runtime has kernels, and the report must match what
        // the session does. (A single LayerNormalization between float32 nodes would be moved to float32 by
        // ONNX Runtime itself, to save the Casts; the converter sees that too.)
        var random = new Random(10);
        float[] Values(int n) => [.. Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() - 0.5))];
        var model = new GraphBuilder("ln")
            .Input("x", DataType.Float, "batch", 8)
            .Initializer("w", Values(64), [8, 8])
            .Initializer("gamma", Values(8), [8])
            .Initializer("beta", Values(8), [8])
            .Node("LayerNormalization", ["x", "gamma", "beta"], ["n1"], "ln1", "", Attr.Int("axis", -1))
            .Node("LayerNormalization", ["n1", "gamma", "beta"], ["n2"], "ln2", "", Attr.Int("axis", -1))
            .Node("MatMul", ["n2", "w"], ["h"], "mm", "")
            .Node("Add", ["h", "x"], ["y"], "residual", "")
            .Output("y", DataType.Float, "batch", 8)
            .Build();

        var (converted, report) = Float16Converter.Convert(model);

        Assert.Contains("ln1", report.Float16Nodes);
        Assert.Contains("ln2", report.Float16Nodes);
        AssertNodesRunWhereReported(converted, report);
        var data = new Dataset(Values(32 * 8), [8], null, "random");
        var (expected, actual) = (Run(model, data), Run(converted, data));
        Assert.True(expected.Zip(actual, (e, a) => MathF.Abs(e - a)).Max() <= 0.02f * expected.Max(MathF.Abs));
    }

    [Fact]
    public void Values_beyond_the_float16_range_are_clamped_and_counted()
    {
        var model = new GraphBuilder("big")
            .Input("x", DataType.Float, "batch", 2)
            .Initializer("w", [1e6f, 1f], [2])
            .Node("Mul", ["x", "w"], ["y"], "scale", "")
            .Output("y", DataType.Float, "batch", 2)
            .Build();

        var (converted, report) = Float16Converter.Convert(model);

        Assert.Equal(1, report.ClampedValues);
        Assert.Equal([Half.MaxValue, (Half)1f], TensorData.ToHalves(converted.Graph.Initializer.Single()));
    }

    [Fact]
    public void Control_flow_and_quantized_models_are_refused_with_a_code()
    {
        var branch = new GraphBuilder("branch").Node("Identity", ["x"], ["z"]).Output("z", DataType.Float, 1).BuildGraph();
        var withIf = new GraphBuilder("if")
            .Input("x", DataType.Float, 1)
            .Input("c", DataType.Bool)
            .Node("If", ["c"], ["y"], "choose", "", Attr.Graph("then_branch", branch), Attr.Graph("else_branch", branch))
            .Output("y", DataType.Float, 1)
            .Build();
        var quantized = new GraphBuilder("q")
            .Input("x", DataType.Float, 1)
            .Initializer("s", [1f], [])
            .Node("QuantizeLinear", ["x", "s"], ["y"], "q", "")
            .Output("y", DataType.Uint8, 1)
            .Build();

        Assert.Equal(DiagnosticCodes.QuantizeUnsupportedModel, Assert.Throws<CompressionException>(() => Float16Converter.Convert(withIf)).Code);
        var error = Assert.Throws<CompressionException>(() => Float16Converter.Convert(quantized));
        Assert.Equal(DiagnosticCodes.QuantizeUnsupportedModel, error.Code);
        Assert.Contains("'q' (QuantizeLinear) is quantized already", error.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The report is what ONNX Runtime does: the session runs exactly the converter's nodes. ONNX Runtime
    /// changes the graph when a float16 node has no float16 kernel (it inserts Casts, cancels one of ours, or
    /// expands a function in float32), so an unchanged graph means every node computes in the precision the
    /// report gives; and every node listed as float32 reads float32 values.
    /// </summary>
    private static void AssertNodesRunWhereReported(ModelProto converted, Float16Report report)
    {
        var session = OnnxRunner.SessionGraph(converted, "converted model", GraphOptimizationLevel.ORT_DISABLE_ALL);
        Assert.Equal(
            converted.Graph.Node.Select(n => n.Name).Order(StringComparer.Ordinal),
            session.Graph.Node.Select(n => n.Name).Order(StringComparer.Ordinal));
        var producers = GraphEdit.Producers(converted.Graph);
        foreach (var name in report.Float32Nodes.Select(n => n[..n.IndexOf(' ', StringComparison.Ordinal)]))
        {
            var node = converted.Graph.Node.Single(n => n.Name == name);
            Assert.All(
                node.Input.Where(producers.ContainsKey).Select(i => producers[i]).Where(p => p.OpType == "Cast"),
                cast => Assert.Equal((long)DataType.Float, GraphEdit.Attribute(cast, "to")!.I));
        }
    }

    private static float[] Run(ModelProto model, Dataset data)
    {
        using var runner = OnnxRunner.FromModel(model, "model", threads: 1);
        return runner.Run(data, 256);
    }
}
