using ModelCompression.Architectures;
using ModelCompression.Core.Tests.Pipeline;
using ModelCompression.Data;
using ModelCompression.Onnx;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// The Fashion-MNIST slice of the sample (6000 training, 2000 test images) and a student trained on it with
/// the distill stage (alpha 0: labels only, so no teacher run is needed). Subclasses pick the architecture.
/// </summary>
public abstract class FashionStudentFixture : IDisposable
{
    private static readonly Lazy<(Dataset Train, Dataset Test)> Data = new(() => (
        IdxReader.LoadLabelled(Repo.SampleData("train-images-idx3-ubyte.gz"), Repo.SampleData("train-labels-idx1-ubyte.gz"), 1 / 255f),
        IdxReader.LoadLabelled(Repo.SampleData("t10k-images-idx3-ubyte.gz"), Repo.SampleData("t10k-labels-idx1-ubyte.gz"), 1 / 255f)));

    private static readonly Lazy<Recipe> SampleRecipe = new(() => RecipeLoader.Load(Repo.SampleRecipe));

    protected FashionStudentFixture(string architecture, object options, int trainSamples, int epochs, double learningRate)
    {
        Dir = new TempDir();
        var (train, test) = Data.Value;
        var untrained = Dir.File("untrained.onnx");
        OnnxModelFile.Save(ArchitectureRegistry.Build(architecture, options, new ArchitectureInputs([28, 28], 10)), untrained);
        var trainSlice = train.Select([.. Enumerable.Range(0, trainSamples)], train.Source);
        Student = Dir.File("student.onnx");
        new DistillStage(new DistillOptions { Epochs = epochs, Alpha = 0, BatchSize = 64, LearningRate = learningRate })
            .Run(Context(trainSlice, test, new RecordingReporter(), Dir), untrained, Student);
    }

    public TempDir Dir { get; }

    /// <summary>The trained float student.</summary>
    public string Student { get; }

    public static Dataset Train => Data.Value.Train;

    public static Dataset Test => Data.Value.Test;

    /// <summary>A stage context over the whole slice (the quantize stage takes its samples from Train).</summary>
    public StageContext Context(RecordingReporter reporter) => Context(Train, Test, reporter, Dir);

    /// <summary>A stage context over the whole slice, for models that need no training first.</summary>
    public static StageContext Context(RecordingReporter reporter, TempDir dir) => Context(Train, Test, reporter, dir);

    public void Dispose()
    {
        Dir.Dispose();
        GC.SuppressFinalize(this);
    }

    private static StageContext Context(Dataset train, Dataset test, RecordingReporter reporter, TempDir dir) =>
        new(SampleRecipe.Value.Path, SampleRecipe.Value.Teacher, train, test, "data-hash", "teacher-hash", (_, _) => throw new InvalidOperationException("alpha 0 needs no teacher"), 10, reporter, CancellationToken.None)
        {
            CheckpointRoot = dir.Dir("checkpoints"),
        };
}

/// <summary>The sample's kind of student: an MLP 784-64-10, 2 epochs on the 6000 training images.</summary>
public sealed class MlpStudentFixture() : FashionStudentFixture("mlp", new MlpOptions { Hidden = [64] }, trainSamples: 6000, epochs: 2, learningRate: 3e-3);

/// <summary>A small CNN (8 and 16 channels, batch norm, flatten head), 1 epoch on the 6000 training images.</summary>
public sealed class CnnStudentFixture() : FashionStudentFixture("cnn", new CnnOptions { Channels = [8, 16], Head = CnnHead.Flatten }, trainSamples: 6000, epochs: 1, learningRate: 3e-3);
