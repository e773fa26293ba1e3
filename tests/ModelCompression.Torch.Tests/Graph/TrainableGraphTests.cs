using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static TorchSharp.torch;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Tests.Graph;

public sealed class TrainableGraphTests
{
    private const double Tolerance = 1e-4;

    public TrainableGraphTests() => TorchNativeLoader.EnsureLoaded();

    /// <summary>The graphs under test, with their sample width.</summary>
    public static TheoryData<string> Graphs() => ["mlp-builder", "mlp_opset13.onnx", "mlp_opset17.onnx"];

    private static (ModelProto Model, int Inputs) Load(string which) => which switch
    {
        "mlp-builder" => (MlpBuilder.Build(20, [16, 12], 5, Activation.Tanh, seed: 3), 20),
        _ => (OnnxModelFile.Load(Fixture(which)), 20),
    };

    [Theory]
    [MemberData(nameof(Graphs))]
    public void Forward_matches_onnx_runtime(string which)
    {
        var (model, inputs) = Load(which);
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        graph.eval();

        foreach (var batch in new[] { 1, 7 })
        {
            var x = RandomFloats(batch * inputs, seed: batch, bound: 2);
            var expected = RunOrt(model, x, [batch, inputs]);
            var actual = ToArray(graph.Forward(torch.tensor(x, [batch, inputs])));

            Assert.True(RelativeError(actual, expected) <= Tolerance, $"batch {batch}: relative error {RelativeError(actual, expected)}");
        }
    }

    [Theory]
    [InlineData("mlp_opset13")]
    [InlineData("mlp_opset17")]
    public void Forward_matches_pytorch_on_the_fixtures_recorded_input(string name)
    {
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Fixture($"{name}.expected.json")));
        var input = document.RootElement.GetProperty("inputs")[0];
        var output = document.RootElement.GetProperty("outputs")[0];
        float[] x = [.. input.GetProperty("data").EnumerateArray().Select(v => v.GetSingle())];
        long[] shape = [.. input.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64())];
        float[] expected = [.. output.GetProperty("data").EnumerateArray().Select(v => v.GetSingle())];

        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(OnnxModelFile.Load(Fixture($"{name}.onnx")));
        graph.eval();
        var actual = ToArray(graph.Forward(torch.tensor(x, shape)));

        Assert.True(RelativeError(actual, expected) <= Tolerance, $"relative error {RelativeError(actual, expected)}");
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void After_three_adam_steps_the_written_back_model_matches_the_module(string which)
    {
        var (model, inputs) = Load(which);
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var before = graph.ParametersByName.ToDictionary(p => p.Key, p => ToArray(p.Value));
        Assert.NotEmpty(before);

        const int Batch = 8;
        var x = torch.tensor(RandomFloats(Batch * inputs, seed: 11), [Batch, inputs]);
        var y = torch.tensor(new long[] { 0, 1, 2, 3, 4, 0, 1, 2 }, [Batch]);
        using var optimizer = torch.optim.Adam(graph.parameters(), 1e-2);
        graph.train();
        for (var step = 0; step < 3; step++)
        {
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(graph.Forward(x), y);
            loss.backward();
            optimizer.step();
        }

        graph.eval();
        // Every parameter moved: the written-back model is not the original by accident.
        Assert.All(graph.ParametersByName, p => Assert.NotEqual(before[p.Key], ToArray(p.Value)));

        var written = graph.WriteBack();
        var probe = RandomFloats(5 * inputs, seed: 12, bound: 2);
        var expected = ToArray(graph.Forward(torch.tensor(probe, [5, inputs])));
        var actual = RunOrt(written, probe, [5, inputs]);
        Assert.True(RelativeError(actual, expected) <= Tolerance, $"relative error {RelativeError(actual, expected)}");
        Assert.True(RelativeError(RunOrt(model, probe, [5, inputs]), expected) > 1e-3, "training changed the outputs");

        foreach (var initializer in written.Graph.Initializer.Where(i => i.DataType == (int)DataType.Float))
        {
            Assert.Equal(ToArray(graph.ParametersByName[initializer.Name]), TensorData.ToFloats(initializer));
        }
    }

    [Theory]
    [MemberData(nameof(Graphs))]
    public void WriteBack_keeps_everything_but_initializer_values(string which)
    {
        var (model, inputs) = Load(which);
        model.MetadataProps.Add(new StringStringEntryProto { Key = "owner", Value = "tests" });
        model.DocString = "a documented model";
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);

        // Untouched, the values come back exactly.
        var untouched = graph.WriteBack();
        Assert.Equal(
            model.Graph.Initializer.Select(i => TensorData.ToFloats(i)),
            untouched.Graph.Initializer.Select(i => TensorData.ToFloats(i)));

        using (torch.no_grad())
        {
            foreach (var parameter in graph.ParametersByName.Values)
            {
                parameter.add_(0.5f);
            }
        }

        var written = graph.WriteBack();

        Assert.Equal(WithoutInitializerValues(model), WithoutInitializerValues(written));
        Assert.Equal(model.OpsetImport, written.OpsetImport);
        Assert.Equal(model.IrVersion, written.IrVersion);
        Assert.Equal(model.ProducerName, written.ProducerName);
        Assert.Equal(model.MetadataProps, written.MetadataProps);
        Assert.Equal(model.Graph.Node, written.Graph.Node);
        Assert.Equal(model.Graph.Input, written.Graph.Input);
        Assert.Equal(model.Graph.Output, written.Graph.Output);
        Assert.Equal(model.Graph.Initializer.Select(i => (i.Name, i.DataType, string.Join(",", i.Dims))), written.Graph.Initializer.Select(i => (i.Name, i.DataType, string.Join(",", i.Dims))));
        foreach (var (original, updated) in model.Graph.Initializer.Zip(written.Graph.Initializer))
        {
            Assert.Equal(TensorData.ToFloats(original).Select(v => v + 0.5f), TensorData.ToFloats(updated));
        }

        // The import took a copy: the caller's model is not changed by training or write-back.
        Assert.Equal(TensorData.ToFloats(Load(which).Model.Graph.Initializer[0]), TensorData.ToFloats(model.Graph.Initializer[0]));
        Assert.Equal(inputs, (int)written.Graph.Input[0].Type.TensorType.Shape.Dim[1].DimValue);
    }

    [Fact]
    public void Frozen_initializers_stay_constants()
    {
        var model = MlpBuilder.Build(6, [4], 3, Activation.Relu, seed: 1);
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model, new TrainableGraphOptions { IsTrainable = name => name.StartsWith("fc2", StringComparison.Ordinal) });

        Assert.Equal(["fc2.bias", "fc2.weight"], graph.ParametersByName.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(2, graph.parameters().Count());
    }

    [Fact]
    public void Unsupported_operators_are_MC2010_naming_every_such_node_before_any_training()
    {
        var path = Fixture("cnn_opset13.onnx");
        var model = OnnxModelFile.Load(path);
        // A PyTorch graph with some nodes turned into operators training does not support (yet).
        foreach (var node in model.Graph.Node)
        {
            node.OpType = node.OpType switch { "Relu" => "Celu", "MaxPool" => "LpPool", var other => other };
        }

        model.Graph.Node[^1].Domain = "com.example";
        var unsupported = model.Graph.Node.Where(n => n.OpType is "Celu" or "LpPool" || n.Domain.Length > 0).ToList();
        Assert.True(unsupported.Count >= 4);

        var e = Assert.Throws<CompressionException>(() => TrainableGraph.Import(model, modelPath: path));

        Assert.Equal(unsupported.Count, e.Diagnostics.Count);
        Assert.All(e.Diagnostics, d =>
        {
            Assert.Equal(DiagnosticCodes.UnsupportedOperator, d.Code);
            Assert.Equal(path, d.File);
            Assert.Contains("Supported: ", d.Message, StringComparison.Ordinal);
            Assert.Contains("Conv, ", d.Message, StringComparison.Ordinal);
        });
        foreach (var (node, diagnostic) in unsupported.Zip(e.Diagnostics))
        {
            var domain = node.Domain.Length > 0 ? node.Domain + "." : "";
            Assert.Contains($"Operator {domain}{node.OpType} (node '{node.Name}')", diagnostic.Message, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(e.Diagnostics, d => d.Message.Contains("Operator Conv ", StringComparison.Ordinal));
    }

    [Fact]
    public void A_built_graph_with_an_unsupported_op_is_MC2010_naming_the_op_and_node()
    {
        var model = new GraphBuilder("deconv")
            .Input("x", DataType.Float, "batch", 1, 4, 4)
            .Initializer("w", RandomFloats(1 * 2 * 3 * 3, seed: 1), [1, 2, 3, 3])
            .Node("ConvTranspose", ["x", "w"], ["c"], "deconv1", "")
            .Node("Relu", ["c"], ["y"], "relu1", "")
            .Output("y", DataType.Float, "batch", 2, 6, 6)
            .Build();

        var e = Assert.Throws<CompressionException>(() => TrainableGraph.Import(model));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.UnsupportedOperator, d.Code);
        Assert.Contains("Operator ConvTranspose (node 'deconv1') cannot be trained yet", d.Message, StringComparison.Ordinal);
        Assert.Contains("Supported: ", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Same_seed_and_data_give_identical_weights()
    {
        var model = MlpBuilder.Build(12, [16], 4, Activation.Relu, seed: 2);
        var random = new Random(5);
        const int Count = 100;
        var inputs = RandomFloats(Count * 12, seed: 6);
        var labels = Enumerable.Range(0, Count).Select(_ => (long)random.Next(4)).ToArray();
        var teacher = RandomFloats(Count * 4, seed: 7, bound: 3);
        var data = new TrainingSet(inputs, [12], labels, teacher, 4);

        ModelProto Train(int seed)
        {
            using var scope = torch.NewDisposeScope();
            using var graph = TrainableGraph.Import(model);
            var result = ClassificationTrainer.Train(graph, data, new DistillationLoss(0.5, 2), new TrainingOptions(2, 16, 1e-2, seed));
            Assert.Equal(2, result.EpochLosses.Count);
            return graph.WriteBack();
        }

        var first = Train(seed: 1);
        var second = Train(seed: 1);
        var other = Train(seed: 2);

        Assert.Equal(first, second);
        Assert.NotEqual(first, other);
        Assert.NotEqual(model, first);
    }
}
