using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Training;
using TorchSharp;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>Small models and data sets for the trainer tests, and weight comparison.</summary>
internal static class TrainerTestSupport
{
    private static readonly Lazy<string> SamplesFolder = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Join(dir.FullName, "samples", "FashionMnist", "data");
            if (File.Exists(Path.Join(candidate, "train-images-idx3-ubyte.gz")))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException($"No samples/FashionMnist/data above {AppContext.BaseDirectory}.");
    });

    /// <summary>A 12-16-4 MLP, with dropout so that resumption must also reproduce the dropout masks.</summary>
    public static ModelProto Mlp(double dropout = 0.2) =>
        MlpBuilder.Build(new MlpOptions { Hidden = [16], Dropout = dropout, Seed = 2 }, new ArchitectureInputs([12], 4));

    /// <summary>
    /// A learnable synthetic problem: the label is the argmax of a fixed random projection of the input, and
    /// the teacher logits are that projection.
    /// </summary>
    public static TrainingSet Synthetic(int count, int seed = 6)
    {
        var inputs = RandomFloats(count * 12, seed);
        var projection = RandomFloats(12 * 4, seed + 1);
        var labels = new long[count];
        var teacher = new float[count * 4];
        for (var i = 0; i < count; i++)
        {
            for (var c = 0; c < 4; c++)
            {
                var sum = 0f;
                for (var k = 0; k < 12; k++)
                {
                    sum += inputs[(i * 12) + k] * projection[(k * 4) + c];
                }

                teacher[(i * 4) + c] = sum * 3;
            }

            var best = 0;
            for (var c = 1; c < 4; c++)
            {
                best = teacher[(i * 4) + c] > teacher[(i * 4) + best] ? c : best;
            }

            labels[i] = best;
        }

        return new TrainingSet(inputs, [12], labels, teacher, 4);
    }

    /// <summary>The first <paramref name="count"/> Fashion-MNIST training samples of the slice, scaled to [0, 1].</summary>
    public static TrainingSet FashionMnist(int count)
    {
        var folder = SamplesFolder.Value;
        var all = IdxReader.LoadLabelled(
            Path.Join(folder, "train-images-idx3-ubyte.gz"), Path.Join(folder, "train-labels-idx1-ubyte.gz"), 1f / 255);
        var data = all.Select([.. Enumerable.Range(0, count)], "slice");
        return new TrainingSet(data.Inputs, [784], data.Labels, null, 10);
    }

    /// <summary>Every parameter's values, by name.</summary>
    public static Dictionary<string, float[]> Weights(TrainableGraph graph) =>
        graph.ParametersByName.ToDictionary(p => p.Key, p => ToArray(p.Value), StringComparer.Ordinal);

    public static void AssertBitIdentical(Dictionary<string, float[]> expected, Dictionary<string, float[]> actual)
    {
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, values) in expected)
        {
            Assert.True(values.AsSpan().SequenceEqual(actual[name]), $"Parameter {name} differs.");
        }
    }

    public static string TemporaryFolder()
    {
        var folder = Path.Join(Path.GetTempPath(), "mc-trainer-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        return folder;
    }

    /// <summary>Cancels the run when the first step of <paramref name="epoch"/> is reported: a "kill" after the previous epoch's checkpoint.</summary>
    public sealed class StopAtEpoch(int epoch, CancellationTokenSource source) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            if (value.Epoch == epoch)
            {
                source.Cancel();
            }
        }
    }

    /// <summary>Calls back synchronously (Progress&lt;T&gt; would post to the thread pool).</summary>
    public sealed class Callback(Action<TrainingProgress> action) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => action(value);
    }

    /// <summary>
    /// Tensors created on this thread and not disposed. Thread-local, unlike torch.Tensor.TotalCount, which
    /// the finalizer thread lowers whenever it collects garbage tensors that earlier tests left behind.
    /// </summary>
    public static long LiveTensors() => DisposeScopeManager.Statistics.ThreadTotalLiveCount;
}
