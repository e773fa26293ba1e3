using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Evaluation;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Core.Tests.Inference;

/// <summary>The one ONNX Runtime runner on a token model (two int64 inputs) held in memory and on disk.</summary>
public sealed class OnnxRunnerTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private static ModelProto Transformer() =>
        ArchitectureRegistry.Build(
            "transformer",
            new TransformerOptions { Width = 16, Heads = 2, Layers = 1, FeedForward = 32, MaxLength = 12, Dropout = 0 },
            new ArchitectureInputs([12], 3, 50));

    [Fact]
    public void An_in_memory_model_and_its_file_give_the_same_outputs()
    {
        var model = Transformer();
        var path = _dir.File("transformer.onnx");
        OnnxModelFile.Save(model, path);
        var tokens = TokenModelCostTests.Tokens(10, 12);

        using var fromFile = new OnnxRunner(path, threads: 1);
        using var inMemory = OnnxRunner.FromModel(model, "transformer", threads: 1);

        Assert.Equal(["input_ids", "attention_mask"], inMemory.Inputs.Select(i => i.Name));
        Assert.Equal(fromFile.Run(tokens, 4), inMemory.Run(tokens, 4));
        // Other batch boundaries only change float rounding.
        Assert.Equal(fromFile.Run(tokens, 4), inMemory.Run(tokens, 3), (a, b) => MathF.Abs(a - b) < 1e-5f);
        Assert.Equal(3, inMemory.OutputWidth);
    }

    [Fact]
    public void Graph_inputs_come_back_as_fed_and_intermediate_values_with_their_types()
    {
        var tokens = TokenModelCostTests.Tokens(5, 12);
        using var runner = OnnxRunner.WithIntermediateOutputs(Transformer(), "transformer", ["input_ids", "embeddings", "attention_mask.float"], threads: 1);
        var ids = new List<long>();
        var shapes = new List<string>();

        runner.Run(tokens, 2, ["input_ids", "embeddings", "attention_mask.float"], (start, size, values) =>
        {
            ids.AddRange(values[0].GetTensorDataAsSpan<long>());
            shapes.Add($"{start}+{size}: [{string.Join(", ", values[1].GetTensorTypeAndShape().Shape)}] [{string.Join(", ", values[2].GetTensorTypeAndShape().Shape)}]");
        });

        var fed = new long[5 * 12];
        tokens.Tensor("input_ids")!.CopyRange(0, 5, fed);
        Assert.Equal(fed, ids);
        Assert.Equal(["0+2: [2, 12, 16] [2, 12]", "2+2: [2, 12, 16] [2, 12]", "4+1: [1, 12, 16] [1, 12]"], shapes);
        Assert.Equal(TensorElementType.Float, runner.OutputTypes["embeddings"]);
        Assert.Throws<ArgumentException>(() => OnnxRunner.WithIntermediateOutputs(Transformer(), "transformer", ["no_such_value"]));
    }

    [Fact]
    public void Time_feeds_every_input_and_times_each_call_after_the_warm_up()
    {
        using var runner = OnnxRunner.FromModel(Transformer(), "transformer", threads: 1);
        var calls = 0;

        var milliseconds = runner.Time(TokenModelCostTests.Tokens(3, 12), batchSize: 5, warmupRuns: 2, runs: 4, () => calls++);

        Assert.Equal(4, milliseconds.Length);
        Assert.All(milliseconds, ms => Assert.True(ms > 0, $"{ms} ms"));
        Assert.Equal(6, calls);
    }

    [Fact]
    public void A_model_ONNX_Runtime_refuses_is_the_user_s_from_a_file_and_the_engine_s_in_memory()
    {
        var broken = Transformer();
        broken.Graph.Node[0].OpType = "NoSuchOp";
        var path = _dir.File("broken.onnx");
        OnnxModelFile.Save(broken, path);

        var user = Assert.Throws<CompressionException>(() => new OnnxRunner(path));
        var engine = Assert.Throws<CompressionException>(() => OnnxRunner.FromModel(broken, "quantized model"));

        Assert.Equal(DiagnosticCodes.ModelInvalid, user.Code);
        Assert.Equal(path, user.Diagnostics[0].File);
        Assert.Equal(DiagnosticCodes.Internal, engine.Code);
        Assert.Contains("cannot load the quantized model", engine.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_non_classifier_output_is_refused_where_class_scores_are_needed()
    {
        var model = Transformer();
        model.Graph.Output.Clear();
        model.Graph.Output.Add(new ValueInfoProto { Name = "embeddings" });
        var path = _dir.File("features.onnx");
        OnnxModelFile.Save(model, path);

        using var runner = OnnxRunner.FromModel(model, "feature model", threads: 1);

        var error = Assert.Throws<CompressionException>(() => runner.Run(TokenModelCostTests.Tokens(2, 12), 2));
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, error.Code);
        Assert.Contains("a classifier's output is [batch, classes]", error.Message, StringComparison.Ordinal);
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, Assert.Throws<CompressionException>(() => new OnnxRunner(path)).Code);
    }
}
