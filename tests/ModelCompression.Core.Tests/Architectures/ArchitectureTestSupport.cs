using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>One architecture with one option set and the data it is built for.</summary>
public sealed record ArchitectureCase(string Id, string Architecture, IArchitectureOptions Options, ArchitectureInputs Inputs)
{
    public override string ToString() => Id;

    public ModelProto Build() => ArchitectureRegistry.Build(Architecture, Options, Inputs);

    public bool TakesTokens => ArchitectureRegistry.Get(Architecture).TakesTokens;

    public bool HasMask => Options switch
    {
        TransformerOptions => true,
        TextCnnOptions t => t.UseAttentionMask,
        EmbeddingBagOptions e => e.UseAttentionMask,
        _ => false,
    };

    public int Vocab => Options switch
    {
        TransformerOptions { VocabSize: > 0 } t => t.VocabSize,
        TextCnnOptions { VocabSize: > 0 } t => t.VocabSize,
        EmbeddingBagOptions { VocabSize: > 0 } t => t.VocabSize,
        _ => Inputs.VocabSize,
    };
}

internal static class ArchitectureTestSupport
{
    /// <summary>The operators the trainer supports: built-in graphs must use no others.</summary>
    public static readonly IReadOnlySet<string> TrainerOps = new HashSet<string>(StringComparer.Ordinal)
    {
        "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Neg", "Exp", "Log", "Erf", "Relu", "LeakyRelu",
        "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
        "BatchNormalization", "LayerNormalization", "Flatten", "Reshape", "Transpose", "Concat", "Split", "Slice",
        "Gather", "Unsqueeze", "Squeeze", "Shape", "Constant", "ConstantOfShape", "Expand", "Where", "Equal", "Less",
        "Cast", "Identity", "Dropout", "ReduceMean", "ReduceSum", "ReduceMax", "Range", "Clip", "Trilu",
    };

    /// <summary>Two or more option sets per architecture, covering every option's branches.</summary>
    public static IReadOnlyList<ArchitectureCase> Cases { get; } =
    [
        new("mlp-flat-relu", "mlp", new MlpOptions { Hidden = [16, 8] }, new([20], 4)),
        new("mlp-image-gelu-dropout", "mlp", new MlpOptions { Hidden = [12], Activation = Activation.Gelu, Dropout = 0.2, Seed = 5 }, new([3, 4, 5], 3)),
        new("mlp-linear-sigmoid", "mlp", new MlpOptions { Hidden = [], Activation = Activation.Sigmoid }, new([7], 2)),
        new("mlp-tanh", "mlp", new MlpOptions { Hidden = [6, 6], Activation = Activation.Tanh }, new([28, 28], 10)),
        new("cnn-bn-max-gap", "cnn", new CnnOptions { Channels = [4, 8] }, new([3, 16, 16], 5)),
        new(
            "cnn-nobn-mixed-flatten-hidden",
            "cnn",
            new CnnOptions { Channels = [4, 6, 8], KernelSize = 5, Pooling = "max, avg, none", BatchNorm = false, Head = CnnHead.Flatten, HeadHidden = 10, Dropout = 0.3 },
            new([1, 12, 12], 3)),
        new("cnn-reshaped-even-kernel", "cnn", new CnnOptions { Channels = [3], KernelSize = 2, Pooling = "avg", ImageShape = [1, 8, 8] }, new([64], 2)),
        new("cnn-hw-sample", "cnn", new CnnOptions { Channels = [2, 2], Head = CnnHead.Flatten }, new([9, 7], 4)),
        new(
            "transformer-mean-gelu",
            "transformer",
            new TransformerOptions { Width = 16, Heads = 4, Layers = 2, FeedForward = 32, Pooling = TokenPooling.Mean, Dropout = 0.1 },
            new([10], 3, VocabSize: 50)),
        new(
            "transformer-cls-relu",
            "transformer",
            new TransformerOptions { VocabSize = 30, Width = 12, Heads = 3, Layers = 1, FeedForward = 24, MaxLength = 16, Pooling = TokenPooling.Cls, Activation = Activation.Relu, Dropout = 0, Seed = 9 },
            new([8], 4)),
        new("text_cnn-mask", "text_cnn", new TextCnnOptions { EmbeddingDim = 8, KernelSizes = [2, 3, 5], Filters = 4 }, new([10], 3, VocabSize: 40)),
        new("text_cnn-nomask-one-kernel", "text_cnn", new TextCnnOptions { VocabSize = 25, EmbeddingDim = 6, KernelSizes = [3], Filters = 5, UseAttentionMask = false, Dropout = 0 }, new([12], 2)),
        new("embedding_bag-mask", "embedding_bag", new EmbeddingBagOptions { EmbeddingDim = 8 }, new([10], 3, VocabSize: 40)),
        new("embedding_bag-nomask-hidden", "embedding_bag", new EmbeddingBagOptions { EmbeddingDim = 8, Hidden = [12, 6], UseAttentionMask = false, Dropout = 0.2 }, new([10], 5, VocabSize: 40)),
    ];

    public static TheoryData<string> CaseIds() => [.. Cases.Select(c => c.Id)];

    public static ArchitectureCase Case(string id) => Cases.Single(c => c.Id == id);

    /// <summary>Random inputs for <paramref name="c"/>: floats, or token ids with a padded tail per row.</summary>
    public static Dictionary<string, (Array Data, long[] Shape)> RandomInputs(ArchitectureCase c, int batch, int seed, int? sequence = null)
    {
        var random = new Random(seed);
        if (!c.TakesTokens)
        {
            var sample = c.Inputs.SampleShape;
            var values = new float[batch * sample.Aggregate(1, (a, b) => a * b)];
            for (var i = 0; i < values.Length; i++)
            {
                values[i] = (float)((random.NextDouble() * 2) - 1);
            }

            return new() { ["input"] = (values, [batch, .. sample.Select(d => (long)d)]) };
        }

        var length = sequence ?? c.Inputs.SampleShape[0];
        var ids = new long[batch * length];
        var mask = new long[batch * length];
        for (var row = 0; row < batch; row++)
        {
            // Row r keeps at least one token; later rows have more padding.
            var kept = Math.Max(1, length - (row % length));
            for (var t = 0; t < length; t++)
            {
                ids[(row * length) + t] = random.Next(c.Vocab);
                mask[(row * length) + t] = t < kept ? 1 : 0;
            }
        }

        var inputs = new Dictionary<string, (Array, long[])> { ["input_ids"] = (ids, [batch, length]) };
        if (c.HasMask)
        {
            inputs["attention_mask"] = (mask, [batch, length]);
        }

        return inputs;
    }

    public static bool HasInput(ModelProto model, string name) => model.Graph.Input.Any(i => i.Name == name);

    /// <summary>Runs <paramref name="model"/> in ONNX Runtime; returns logits and their shape.</summary>
    public static (float[] Values, long[] Shape) RunOrt(ModelProto model, IReadOnlyDictionary<string, (Array Data, long[] Shape)> inputs)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var values = new List<OrtValue>();
        try
        {
            foreach (var (_, (data, shape)) in inputs)
            {
                values.Add(data switch
                {
                    float[] f => OrtValue.CreateTensorValueFromMemory(f, shape),
                    long[] l => OrtValue.CreateTensorValueFromMemory(l, shape),
                    _ => throw new ArgumentException("float or long inputs only"),
                });
            }

            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, [.. inputs.Keys], values, ["logits"]);
            return (outputs[0].GetTensorDataAsSpan<float>().ToArray(), outputs[0].GetTensorTypeAndShape().Shape);
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    public static float[] Floats(ModelProto model, string initializer) =>
        TensorData.ToFloats(model.Graph.Initializer.Single(i => i.Name == initializer));

    public static long[] Dims(ModelProto model, string initializer) =>
        [.. model.Graph.Initializer.Single(i => i.Name == initializer).Dims];

    public static void AssertClose(float[] expected, float[] actual, double tolerance = 1e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(
                Math.Abs(expected[i] - actual[i]) <= tolerance * (1 + Math.Abs(expected[i])),
                $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
