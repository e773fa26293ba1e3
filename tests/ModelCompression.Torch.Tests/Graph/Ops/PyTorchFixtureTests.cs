using System.Text.Json;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using Xunit.Abstractions;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Graph.Ops;

/// <summary>
/// Every PyTorch-exported fixture (tests/fixtures/pytorch, described by fixtures.json): the imported module
/// matches ONNX Runtime and the recorded PyTorch output, and trains into a graph ONNX Runtime still agrees with.
/// </summary>
public sealed class PyTorchFixtureTests
{
    private const double Tolerance = 1e-4;
    private readonly ITestOutputHelper _output;

    public PyTorchFixtureTests(ITestOutputHelper output)
    {
        TorchNativeLoader.EnsureLoaded();
        _output = output;
    }

    public static TheoryData<string> Fixtures()
    {
        var data = new TheoryData<string>();
        foreach (var file in Index().GetProperty("files").EnumerateObject())
        {
            data.Add(file.Name);
        }

        return data;
    }

    [Fact]
    public void Every_fixture_in_the_index_is_covered()
    {
        Assert.Equal(
            ["cnn_opset13.onnx", "cnn_opset17.onnx", "fashion_cnn_teacher.onnx", "mlp_opset13.onnx", "mlp_opset17.onnx", "text_opset13.onnx", "text_opset17.onnx", "transformer_opset13.onnx", "transformer_opset17.onnx"],
            Fixtures().Cast<object[]>().Select(row => (string)row[0]).Order(StringComparer.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Eval_forward_matches_onnx_runtime_at_batch_1_and_3(string file)
    {
        var model = OnnxModelFile.Load(Fixture(file));
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        graph.eval();
        foreach (var batch in new[] { 1, 3 })
        {
            var inputs = RandomInputs(file, batch, seed: batch);
            var expected = RunOrtAll(model, inputs)[0];
            using var noGrad = torch.no_grad();
            var actual = graph.Forward(inputs)[graph.OutputNames[0]];
            Assert.Equal(expected.Shape, actual.shape);
            var error = RelativeError(ToDoubles(actual), expected.Data);
            _output.WriteLine($"{file} batch {batch}: relative error vs ONNX Runtime {error:E2}");
            Assert.True(error <= Tolerance, $"{file} batch {batch}: relative error {error}");
        }
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Eval_forward_matches_the_recorded_pytorch_output(string file)
    {
        var spec = Index().GetProperty("files").GetProperty(file);
        using var document = JsonDocument.Parse(File.ReadAllText(Fixture(spec.GetProperty("expected").GetString()!)));
        using var scope = torch.NewDisposeScope();
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var input in document.RootElement.GetProperty("inputs").EnumerateArray())
        {
            long[] shape = [.. input.GetProperty("shape").EnumerateArray().Select(v => v.GetInt64())];
            var data = input.GetProperty("data").EnumerateArray();
            inputs[input.GetProperty("name").GetString()!] = input.GetProperty("dtype").GetString() == "float32"
                ? torch.tensor(data.Select(v => v.GetSingle()).ToArray(), shape)
                : torch.tensor(data.Select(v => v.GetInt64()).ToArray(), shape);
        }

        double[] expected = [.. document.RootElement.GetProperty("outputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetDouble())];
        using var graph = TrainableGraph.Import(OnnxModelFile.Load(Fixture(file)));
        graph.eval();
        using var noGrad = torch.no_grad();
        var actual = ToDoubles(graph.Forward(inputs)[graph.OutputNames[0]]);

        var error = RelativeError(actual, expected);
        _output.WriteLine($"{file}: relative error vs PyTorch {error:E2}");
        Assert.True(error <= Tolerance, $"{file}: relative error {error}");
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void After_adam_steps_in_train_mode_the_written_back_model_matches_the_module(string file)
    {
        var model = OnnxModelFile.Load(Fixture(file));
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        var before = graph.ParametersByName.ToDictionary(p => p.Key, p => ToArray(p.Value));
        var statisticsBefore = graph.RunningStatisticsByName.ToDictionary(p => p.Key, p => ToArray(p.Value));
        torch.manual_seed(1);
        using (var optimizer = torch.optim.Adam(graph.parameters(), 1e-2))
        {
            graph.train();
            for (var step = 0; step < 3; step++)
            {
                var inputs = RandomInputs(file, 4, seed: 100 + step);
                var logits = graph.Forward(inputs)[graph.OutputNames[0]];
                var labels = torch.tensor(new long[] { 0, 1, 2, 3 }, [4]);
                optimizer.zero_grad();
                nn.functional.cross_entropy(logits, labels).backward();
                optimizer.step();
            }
        }

        graph.eval();
        Assert.Contains(graph.ParametersByName, p => !before[p.Key].SequenceEqual(ToArray(p.Value)));
        var written = graph.WriteBack();
        var probe = RandomInputs(file, 3, seed: 7);
        using var noGrad = torch.no_grad();
        var expected = ToDoubles(graph.Forward(probe)[graph.OutputNames[0]]);
        var actual = RunOrtAll(written, probe)[0].Data;
        Assert.All(expected, v => Assert.True(double.IsFinite(v), "the trained module's outputs are finite"));
        var error = RelativeError(actual, expected);
        _output.WriteLine($"{file}: written-back model in ONNX Runtime vs module after training {error:E2}");
        Assert.True(error <= Tolerance, $"relative error {error}");
        Assert.True(RelativeError(RunOrtAll(model, probe)[0].Data, expected) > 1e-3, "training changed the outputs");

        // BatchNormalization's running statistics moved and are in the written graph; they did not train.
        foreach (var (name, values) in statisticsBefore)
        {
            var now = ToArray(graph.RunningStatisticsByName[name]);
            Assert.NotEqual(values, now);
            Assert.Equal(now, TensorData.ToFloats(written.Graph.Initializer.Single(i => i.Name == name)));
            Assert.DoesNotContain(name, graph.ParametersByName.Keys);
        }

        if (file == "cnn_opset17.onnx")
        {
            Assert.Equal(4, statisticsBefore.Count);
        }
    }

    private static JsonElement Index() =>
        JsonDocument.Parse(File.ReadAllText(Fixture("fixtures.json"))).RootElement;

    /// <summary>Random inputs as fixtures.json describes them (dtype, dynamic dims, value range).</summary>
    internal static Dictionary<string, Tensor> RandomInputs(string file, int batch, int seed)
    {
        var random = new Random(seed);
        var inputs = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var input in Index().GetProperty("files").GetProperty(file).GetProperty("inputs").EnumerateArray())
        {
            long[] shape = [.. input.GetProperty("shape").EnumerateArray().Select(d => d.ValueKind == JsonValueKind.Number ? d.GetInt64() : d.GetString() == "batch" ? batch : 12)];
            var count = (int)shape.Aggregate(1L, (a, b) => a * b);
            var hasRange = input.TryGetProperty("range", out var range);
            if (input.GetProperty("dtype").GetString() == "float32")
            {
                double low = hasRange ? range[0].GetDouble() : -2, high = hasRange ? range[1].GetDouble() : 2;
                inputs[input.GetProperty("name").GetString()!] = torch.tensor(Enumerable.Range(0, count).Select(_ => (float)(low + (random.NextDouble() * (high - low)))).ToArray(), shape);
            }
            else
            {
                long low = range[0].GetInt64(), high = range[1].GetInt64();
                inputs[input.GetProperty("name").GetString()!] = torch.tensor(Enumerable.Range(0, count).Select(_ => random.NextInt64(low, high)).ToArray(), shape);
            }
        }

        return inputs;
    }
}
