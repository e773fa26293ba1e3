using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Evaluation;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Recipes;
using ModelCompression.Stages;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// A trained MLP student 784-256-10 on a slice of the Fashion-MNIST sample (3000 training, all 2000 test
/// images), trained here on labels for a few epochs, and a stage context over the same data with the sample's
/// PyTorch teacher (its logits computed once, on first use).
/// </summary>
public sealed class FashionStudentFixture : IDisposable
{
    public const int TrainSamples = 3000;

    public FashionStudentFixture()
    {
        Dir = new TempDir();
        const float scale = 1f / 255;
        var train = IdxReader.LoadLabelled(Repo.SampleData("train-images-idx3-ubyte.gz"), Repo.SampleData("train-labels-idx1-ubyte.gz"), scale);
        Train = train.Select([.. Enumerable.Range(0, TrainSamples)], "fashion train slice");
        Test = IdxReader.LoadLabelled(Repo.SampleData("t10k-images-idx3-ubyte.gz"), Repo.SampleData("t10k-labels-idx1-ubyte.gz"), scale);
        Recipe = new Recipe
        {
            Path = Dir.Write("prune.compress.yaml", "# stands in for the recipe the stages name in diagnostics\n"),
            Data = new DataSpec("idx", new DataSplit(Repo.SampleData("train-images-idx3-ubyte.gz"), null), new DataSplit(Repo.SampleData("t10k-images-idx3-ubyte.gz"), null), scale),
            Teachers = [new TeacherSpec(Repo.Teacher, 1)],
            Student = new StudentSpec("mlp", null, null, 0),
            Baseline = Dir.File("prune.baseline.json"),
            Stages = [],
            Gates = [],
            Outputs = new OutputSpec("student.onnx", []),
        };

        // The student: 784-256-10, 4 epochs of Adam on labels (a few seconds).
        TorchNativeLoader.EnsureLoaded();
        var model = ArchitectureRegistry.Build("mlp", new MlpOptions { Hidden = [256], Seed = 3 }, new ArchitectureInputs([28, 28], 10));
        using (var graph = TrainableGraph.Import(model))
        {
            ClassificationTrainer.Train(
                graph,
                new TrainingSet(Train.Inputs, [28, 28], Train.Labels, null, 10),
                new DistillationLoss(0, 1),
                new TrainingOptions(Epochs: 4, BatchSize: 64, LearningRate: 1e-3, Seed: 1));
            StudentPath = Dir.File("student.onnx");
            OnnxModelFile.Save(graph.WriteBack(), StudentPath);
        }

        StudentAccuracy = Accuracy(StudentPath);
        TeacherLogits = new Lazy<float[]>(() =>
        {
            using var runner = new OnnxRunner(Repo.Teacher);
            return runner.Run(Train, 500);
        });
    }

    public TempDir Dir { get; }

    public Dataset Train { get; }

    public Dataset Test { get; }

    public Recipe Recipe { get; }

    /// <summary>The trained student; tests must not change it (and check that the stages do not).</summary>
    public string StudentPath { get; }

    /// <summary>The trained student's accuracy on the 2000 test images.</summary>
    public double StudentAccuracy { get; }

    /// <summary>The teacher's logits on the training slice, computed on first use.</summary>
    public Lazy<float[]> TeacherLogits { get; }

    /// <summary>A stage context over the slice; <paramref name="reporter"/> collects diagnostics.</summary>
    public StageContext Context(IPipelineReporter? reporter = null) =>
        new(Recipe.Path, Recipe.Teacher, Train, Test, "fashion-slice", ModelHash.ComputeFile(Repo.Teacher), (_, _) => [(TeacherLogits.Value, 1.0)], 10, reporter ?? NullPipelineReporter.Instance, CancellationToken.None)
        {
            CheckpointRoot = Dir.Dir("checkpoints"),
        };

    public double Accuracy(string modelPath) => ModelEvaluation.Measure("test", modelPath, Test, new EvaluateOptions { BatchSize = 500, MeasureLatency = false }).Accuracy;

    /// <summary>A fresh output path in a fresh folder (as the cache gives a stage).</summary>
    public string Output(string name) => Path.Join(Dir.Dir($"out-{name}-{Guid.NewGuid():N}"), ArtifactCache.ModelFile);

    public void Dispose() => Dir.Dispose();
}

[CollectionDefinition(Name)]
public sealed class FashionStudentCollection : ICollectionFixture<FashionStudentFixture>
{
    public const string Name = "Fashion-MNIST student";
}

/// <summary>Collects what a stage reports.</summary>
public sealed class CollectingReporter : IPipelineReporter
{
    public List<Diagnostics.Diagnostic> Diagnostics { get; } = [];

    public int TrainingSteps { get; private set; }

    public void StageStarted(string stage, bool cached)
    {
    }

    public void Training(string stage, TrainingProgressInfo progress) => TrainingSteps = progress.Step;

    public List<string> Infos { get; } = [];

    public void Info(string message) => Infos.Add(message);

    public void Report(Diagnostics.Diagnostic diagnostic) => Diagnostics.Add(diagnostic);
}
