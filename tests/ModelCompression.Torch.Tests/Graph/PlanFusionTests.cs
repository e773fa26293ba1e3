using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Tests.Graph.Ops;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static TorchSharp.torch;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Tests.Graph;

/// <summary>
/// MatMul + Add and the Erf GELU run fused (<see cref="PlanFusion"/>): the same outputs and gradients as the
/// nodes run one by one, only where the pattern is exactly there, and never at the cost of a value someone reads.
/// </summary>
public sealed class PlanFusionTests
{
    private const double Tolerance = 1e-5;
    private const string Linear = PlanFusion.LinearStep;
    private const string Gelu = PlanFusion.GeluStep;

    public PlanFusionTests() => TorchNativeLoader.EnsureLoaded();

    public static TheoryData<string> Models() =>
        ["transformer-builder", "transformer_opset13.onnx", "transformer_opset17.onnx", "gelu_mlp_opset13.onnx", "mlp-gelu-builder"];

    [Theory]
    [MemberData(nameof(Models))]
    public void Fused_and_unfused_give_the_same_outputs_and_gradients_in_training_mode(string which)
    {
        var model = Load(which);
        using var scope = torch.NewDisposeScope();
        var inputs = Inputs(which, batch: 4, seed: 3);
        using var fused = TrainableGraph.Import(model);
        using var plain = TrainableGraph.Import(model, new TrainableGraphOptions { Fuse = false });
        Assert.True(fused.PlanStepTypes.Count < plain.PlanStepTypes.Count, $"{which}: nothing was fused");

        var (fusedOutput, fusedGradients) = OutputAndGradients(fused, inputs);
        var (plainOutput, plainGradients) = OutputAndGradients(plain, inputs);

        var error = RelativeError(fusedOutput, plainOutput);
        Assert.True(error <= Tolerance, $"{which}: output relative error {error}");
        Assert.Equal(plainGradients.Keys.Order(StringComparer.Ordinal), fusedGradients.Keys.Order(StringComparer.Ordinal));
        // Some gradients are zero in exact arithmetic (the attention key bias: softmax ignores a constant per
        // query) and only rounding noise in float32, so each is measured against at least 1e-3 of the largest.
        var largest = plainGradients.Values.Max(g => g.Max(Math.Abs));
        foreach (var (name, expected) in plainGradients)
        {
            var scale = Math.Max(expected.Max(Math.Abs), 1e-3 * largest);
            var gradientError = fusedGradients[name].Zip(expected, (a, b) => Math.Abs(a - b)).Max() / scale;
            Assert.True(gradientError <= Tolerance, $"{which}: gradient of '{name}' relative error {gradientError}");
        }

        // The comparison has teeth: the gradients reach the fused weights.
        Assert.Contains(plainGradients.Values, g => g.Any(v => v != 0));
    }

    [Theory]
    [InlineData("transformer-builder", 12, 2)]
    [InlineData("transformer_opset13.onnx", 6, 0)]
    [InlineData("transformer_opset17.onnx", 6, 0)]
    [InlineData("gelu_mlp_opset13.onnx", 2, 1)]
    [InlineData("mlp-gelu-builder", 0, 2)]
    public void The_plan_really_is_fused(string which, int linearSteps, int geluSteps)
    {
        var model = Load(which);
        using var scope = torch.NewDisposeScope();
        using var fused = TrainableGraph.Import(model);
        using var plain = TrainableGraph.Import(model, new TrainableGraphOptions { Fuse = false });

        Assert.Equal(linearSteps, fused.PlanStepTypes.Count(t => t == Linear));
        Assert.Equal(geluSteps, fused.PlanStepTypes.Count(t => t == Gelu));
        // A linear step replaces two nodes, a GELU step five.
        Assert.Equal(plain.PlanStepTypes.Count - linearSteps - (4 * geluSteps), fused.PlanStepTypes.Count);
        if (geluSteps > 0)
        {
            Assert.DoesNotContain("Erf", fused.PlanStepTypes);
        }

        Assert.DoesNotContain(Linear, plain.PlanStepTypes);
        Assert.DoesNotContain(Gelu, plain.PlanStepTypes);
    }

    [Fact]
    public void The_pytorch_gelu_export_runs_as_linear_gelu_linear_and_matches_pytorch_and_onnx_runtime()
    {
        var model = Load("gelu_mlp_opset13.onnx");
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixture("gelu_mlp_opset13.expected.json")));
        var input = document.RootElement.GetProperty("inputs")[0];
        float[] x = [.. input.GetProperty("data").EnumerateArray().Select(v => v.GetSingle())];
        double[] expected = [.. document.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetDouble())];
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        graph.eval();

        Assert.Equal([Linear, Gelu, Linear], graph.PlanStepTypes);
        var inputs = new Dictionary<string, Tensor> { ["input"] = torch.tensor(x, [2, 5, 8]) };
        var actual = ToDoubles(graph.Forward(inputs)["output"]);
        Assert.True(RelativeError(actual, expected) <= 1e-4, $"vs PyTorch {RelativeError(actual, expected)}");
        var ort = RunOrtAll(model, inputs)[0].Data;
        Assert.True(RelativeError(actual, ort) <= Tolerance, $"vs ONNX Runtime {RelativeError(actual, ort)}");
    }

    /// <summary>Each GELU spelling exporters write, each fused and exact.</summary>
    public static TheoryData<string> GeluForms() =>
        ["(x*0.5)*o", "(0.5*x)*(o)", "(x*o)*0.5", "x*(o*0.5)", "(o*0.5)*x", "div_sqrt2", "constants_of_rank_2_on_a_vector"];

    [Theory]
    [MemberData(nameof(GeluForms))]
    public void Every_gelu_spelling_fuses_and_matches_the_nodes_and_onnx_runtime(string form)
    {
        using var scope = torch.NewDisposeScope();
        var x = form.StartsWith("constants_of_rank_2", StringComparison.Ordinal) ? Rand(6) : Rand(3, 6);
        var model = GeluGraph(form, x.shape);
        using var fused = TrainableGraph.Import(model);
        using var plain = TrainableGraph.Import(model, new TrainableGraphOptions { Fuse = false });
        Assert.Equal([Gelu], fused.PlanStepTypes);

        var inputs = new Dictionary<string, Tensor> { ["x"] = x.requires_grad_(true) };
        var y = fused.Forward(inputs)["y"];
        var expected = RunOrtAll(model, inputs)[0];
        Assert.Equal(expected.Shape, y.shape);
        Assert.True(RelativeError(ToDoubles(y), expected.Data) <= Tolerance, $"{form}: vs ONNX Runtime {RelativeError(ToDoubles(y), expected.Data)}");

        // d/dx through gelu's own backward against the five nodes' chain rule.
        var fusedGradient = ToDoubles(torch.autograd.grad([y.sum()], [x])[0]);
        var plainGradient = ToDoubles(torch.autograd.grad([plain.Forward(inputs)["y"].sum()], [x])[0]);
        Assert.True(RelativeError(fusedGradient, plainGradient) <= Tolerance, $"{form}: gradient {RelativeError(fusedGradient, plainGradient)}");
    }

    /// <summary>Graphs where a pattern is almost there; each runs node by node and stays exact.</summary>
    public static TheoryData<string> NotFusable() =>
    [
        "linear:product_read_twice", "linear:product_is_a_graph_output", "linear:bias_broadcasts", "linear:weight_is_computed",
        "linear:weight_is_3d", "gelu:erf_is_a_graph_output", "gelu:one_plus_read_twice", "gelu:half_is_0.6",
        "gelu:scale_trains", "gelu:scale_is_1",
    ];

    [Theory]
    [MemberData(nameof(NotFusable))]
    public void A_pattern_whose_intermediate_is_read_elsewhere_or_whose_constants_differ_is_not_fused(string which)
    {
        using var scope = torch.NewDisposeScope();
        var (model, inputs) = NearMiss(which);
        using var graph = TrainableGraph.Import(model);

        Assert.DoesNotContain(Linear, graph.PlanStepTypes);
        Assert.DoesNotContain(Gelu, graph.PlanStepTypes);
        var outputs = graph.Forward(inputs);
        foreach (var (expected, name) in RunOrtAll(model, inputs).Zip(graph.OutputNames))
        {
            Assert.True(RelativeError(ToDoubles(outputs[name]), expected.Data) <= Tolerance, $"{which}: '{name}' vs ONNX Runtime");
        }
    }

    [Fact]
    public void KeepValues_keeps_a_value_readable_and_leaves_its_pattern_unfused()
    {
        var model = Load("transformer-builder");
        string[] kept = ["encoder.layer0.feed_forward.fc1.matmul", "encoder.layer1.feed_forward.gelu.erf"];
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model, new TrainableGraphOptions { KeepValues = kept });
        using var plain = TrainableGraph.Import(model, new TrainableGraphOptions { Fuse = false });
        graph.eval();
        plain.eval();

        Assert.Equal(11, graph.PlanStepTypes.Count(t => t == Linear));
        Assert.Equal(1, graph.PlanStepTypes.Count(t => t == Gelu));
        var inputs = Inputs("transformer-builder", batch: 2, seed: 4);
        var values = graph.Forward(inputs, kept);
        var expected = plain.Forward(inputs, kept);
        foreach (var name in kept)
        {
            Assert.Equal(expected[name].shape, values[name].shape);
            Assert.True(RelativeError(ToDoubles(values[name]), ToDoubles(expected[name])) <= Tolerance, name);
        }
    }

    [Fact]
    public void Reading_a_fused_away_value_names_the_pattern_and_the_way_to_keep_it()
    {
        var model = Load("transformer-builder");
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var inputs = Inputs("transformer-builder", batch: 2, seed: 4);

        var e = Assert.Throws<ArgumentException>(() => graph.Forward(inputs, ["encoder.layer0.feed_forward.fc1.matmul"]));
        Assert.Equal("extraOutputs", e.ParamName);
        Assert.Contains("'encoder.layer0.feed_forward.fc1.matmul'", e.Message, StringComparison.Ordinal);
        Assert.Contains("MatMul+Add pattern (MatMul 'encoder.layer0.feed_forward.fc1.matmul', Add 'encoder.layer0.feed_forward.fc1')", e.Message, StringComparison.Ordinal);
        Assert.Contains("KeepValues", e.Message, StringComparison.Ordinal);

        var gelu = Assert.Throws<ArgumentException>(() => graph.Forward(inputs, ["encoder.layer1.feed_forward.gelu.half_x"]));
        Assert.Contains("Erf GELU pattern (Mul 'encoder.layer1.feed_forward.gelu.scaled', Erf ", gelu.Message, StringComparison.Ordinal);

        // A fused pattern's result stays readable, and a name that is nowhere is still the old error.
        Assert.Equal([2, 8, 32], graph.Forward(inputs, ["encoder.layer0.feed_forward.gelu"])["encoder.layer0.feed_forward.gelu"].shape);
        var missing = Assert.Throws<ArgumentException>(() => graph.Forward(inputs, ["no.such.value"]));
        Assert.Contains("has no value 'no.such.value'", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_fused_transformer_trains_and_writes_back_the_unchanged_graph_with_its_trained_weights()
    {
        var model = Load("transformer-builder");
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        torch.manual_seed(2);
        using (var optimizer = torch.optim.Adam(graph.parameters(), 1e-2))
        {
            graph.train();
            for (var step = 0; step < 3; step++)
            {
                optimizer.zero_grad();
                var logits = graph.Forward(Inputs("transformer-builder", batch: 4, seed: 10 + step))["logits"];
                nn.functional.cross_entropy(logits, torch.tensor(new long[] { 0, 1, 2, 0 }, [4])).backward();
                optimizer.step();
            }
        }

        graph.eval();
        var written = graph.WriteBack();
        Assert.Equal(model.Graph.Node, written.Graph.Node);
        Assert.Equal(WithoutInitializerValues(model), WithoutInitializerValues(written));
        var probe = Inputs("transformer-builder", batch: 3, seed: 20);
        using var noGrad = torch.no_grad();
        var expected = ToDoubles(graph.Forward(probe)["logits"]);
        Assert.True(RelativeError(RunOrtAll(written, probe)[0].Data, expected) <= 1e-4, "written-back model vs module");
        Assert.True(RelativeError(RunOrtAll(model, probe)[0].Data, expected) > 1e-3, "training changed the outputs");
    }

    private static ModelProto Load(string which) => which switch
    {
        "transformer-builder" => TransformerBuilder.Build(
            new TransformerOptions { VocabSize = 50, Width = 16, Heads = 2, Layers = 2, FeedForward = 32, MaxLength = 8, Dropout = 0.1, Seed = 5 },
            new ArchitectureInputs([8], 3)),
        "mlp-gelu-builder" => MlpBuilder.Build(20, [16, 12], 5, Activation.Gelu, seed: 3),
        _ => OnnxModelFile.Load(Fixture(which)),
    };

    private static Dictionary<string, Tensor> Inputs(string which, int batch, int seed)
    {
        var random = new Random(seed);
        switch (which)
        {
            case "transformer-builder":
                // Padding at the end of some rows; position 0 always attended.
                var mask = Enumerable.Range(0, batch * 8).Select(i => i % 8 < 8 - (i / 8 % 3) ? 1L : 0L).ToArray();
                return new()
                {
                    [TransformerBuilder.InputIdsName] = torch.tensor(Enumerable.Range(0, batch * 8).Select(_ => random.NextInt64(0, 50)).ToArray(), [batch, 8]),
                    [TransformerBuilder.AttentionMaskName] = torch.tensor(mask, [batch, 8]),
                };
            case "mlp-gelu-builder":
                return new() { [MlpBuilder.InputName] = torch.tensor(RandomFloats(batch * 20, seed, bound: 2), [batch, 20]) };
            case "gelu_mlp_opset13.onnx":
                return new() { ["input"] = torch.tensor(RandomFloats(batch * 5 * 8, seed, bound: 2), [batch, 5, 8]) };
            default:
                return PyTorchFixtureTests.RandomInputs(which, batch, seed);
        }
    }

    /// <summary>Forward in training mode (same dropout masks for both: same seed), a fixed random weighting of the output, backward.</summary>
    private static (double[] Output, Dictionary<string, double[]> Gradients) OutputAndGradients(TrainableGraph graph, Dictionary<string, Tensor> inputs)
    {
        graph.train();
        // The graph's own stream: xunit runs other test classes on other threads, and they draw from torch's global one.
        graph.SeedRandom(7);
        var output = graph.Forward(inputs)[graph.OutputNames[0]];
        var weights = torch.tensor(RandomFloats((int)output.numel(), seed: 8), output.shape);
        (output * weights).sum().backward();
        return (ToDoubles(output), graph.ParametersByName.ToDictionary(p => p.Key, p => ToDoubles(p.Value.grad!), StringComparer.Ordinal));
    }

    private static Tensor Rand(params long[] shape) =>
        torch.tensor(RandomFloats((int)shape.Aggregate(1L, (a, b) => a * b), seed: 21, bound: 3), shape);

    private static GraphBuilder Constant(GraphBuilder builder, string name, float value, params long[] dims) =>
        builder.Node("Constant", [], [name], Attr.Tensor("value", TensorData.FromFloats(name, [value], dims)));

    /// <summary>y = GELU(x) spelled as <paramref name="form"/> with Constant nodes, as exporters and our builders write it.</summary>
    private static ModelProto GeluGraph(string form, long[] shape)
    {
        long[] constantDims = form == "constants_of_rank_2_on_a_vector" ? [1, 1] : [];
        var b = new GraphBuilder("gelu").Opset(17).Input("x", DataType.Float, [.. shape.Select(d => (Dim)d)]);
        Constant(b, "inv_sqrt2", (float)(1 / Math.Sqrt(2)), constantDims);
        Constant(b, "sqrt2", (float)Math.Sqrt(2), constantDims);
        Constant(b, "one", 1f, constantDims);
        Constant(b, "half", 0.5f, constantDims);
        if (form == "div_sqrt2")
        {
            b.Node("Div", ["x", "sqrt2"], ["s"]);
        }
        else
        {
            b.Node("Mul", form == "(0.5*x)*(o)" ? ["inv_sqrt2", "x"] : ["x", "inv_sqrt2"], ["s"]);
        }

        b.Node("Erf", ["s"], ["e"]).Node("Add", form == "(0.5*x)*(o)" ? ["one", "e"] : ["e", "one"], ["o"]);
        switch (form)
        {
            case "(x*0.5)*o" or "constants_of_rank_2_on_a_vector":
                b.Node("Mul", ["x", "half"], ["h"]).Node("Mul", ["h", "o"], ["y"]);
                break;
            case "(0.5*x)*(o)":
                b.Node("Mul", ["half", "x"], ["h"]).Node("Mul", ["o", "h"], ["y"]);
                break;
            case "(x*o)*0.5" or "div_sqrt2":
                b.Node("Mul", ["x", "o"], ["p"]).Node("Mul", ["p", "half"], ["y"]);
                break;
            case "x*(o*0.5)":
                b.Node("Mul", ["o", "half"], ["t"]).Node("Mul", ["x", "t"], ["y"]);
                break;
            case "(o*0.5)*x":
                b.Node("Mul", ["half", "o"], ["t"]).Node("Mul", ["t", "x"], ["y"]);
                break;
            default:
                throw new ArgumentException(form, nameof(form));
        }

        return b.Output("y", DataType.Float, null).Build();
    }

    private static (ModelProto Model, Dictionary<string, Tensor> Inputs) NearMiss(string which)
    {
        var b = new GraphBuilder("near").Opset(17).Input("x", DataType.Float, "batch", 3, 4);
        var inputs = new Dictionary<string, Tensor> { ["x"] = Rand(2, 3, 4) };
        if (which.StartsWith("linear:", StringComparison.Ordinal))
        {
            b.Initializer("W", RandomFloats(20, seed: 1), [4, 5]).Initializer("b", RandomFloats(5, seed: 2), [5]);
            var (weight, bias) = ("W", "b");
            switch (which)
            {
                case "linear:bias_broadcasts":
                    b.Initializer("b1", RandomFloats(1, seed: 3), [1]);
                    bias = "b1";
                    break;
                case "linear:weight_is_computed":
                    b.Node("Relu", ["W"], ["W_relu"]);
                    weight = "W_relu";
                    break;
                case "linear:weight_is_3d":
                    b.Initializer("W3", RandomFloats(20, seed: 4), [1, 4, 5]);
                    weight = "W3";
                    break;
            }

            b.Node("MatMul", ["x", weight], ["p"]).Node("Add", ["p", bias], ["y"]).Output("y", DataType.Float, null);
            if (which == "linear:product_read_twice")
            {
                b.Node("Relu", ["p"], ["r"]).Output("r", DataType.Float, null);
            }
            else if (which == "linear:product_is_a_graph_output")
            {
                b.Output("p", DataType.Float, null);
            }

            return (b.Build(), inputs);
        }

        Constant(b, "inv_sqrt2", which == "gelu:scale_is_1" ? 1f : (float)(1 / Math.Sqrt(2)));
        Constant(b, "one", 1f);
        Constant(b, "half", which == "gelu:half_is_0.6" ? 0.6f : 0.5f);
        var scale = "inv_sqrt2";
        if (which == "gelu:scale_trains")
        {
            // A float initializer trains by default: fusing would drop its gradient.
            b.Initializer("scale", [(float)(1 / Math.Sqrt(2))], []);
            scale = "scale";
        }

        b.Node("Mul", ["x", scale], ["s"]).Node("Erf", ["s"], ["e"]).Node("Add", ["e", "one"], ["o"])
            .Node("Mul", ["x", "half"], ["h"]).Node("Mul", ["h", "o"], ["y"]).Output("y", DataType.Float, null);
        if (which == "gelu:erf_is_a_graph_output")
        {
            b.Output("e", DataType.Float, null);
        }
        else if (which == "gelu:one_plus_read_twice")
        {
            b.Node("Neg", ["o"], ["n"]).Output("n", DataType.Float, null);
        }

        return (b.Build(), inputs);
    }
}
