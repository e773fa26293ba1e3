using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Stages;

/// <summary>A run without a teacher: what stages may still key and run, and a clear failure for what may not.</summary>
public sealed class StageContextTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly Dataset _data;
    private readonly StageContext _context;

    public StageContextTests()
    {
        var images = Idx.Write(_dir.File("images.idx"), [4, 2, 2], [.. Enumerable.Range(0, 16).Select(i => (byte)i)]);
        var labels = Idx.Write(_dir.File("labels.idx"), [4], [0, 1, 2, 1]);
        _data = IdxReader.LoadLabelled(images, labels, 1f / 255);
        var recipe = new Recipe
        {
            Path = _dir.Write("labels-only.compress.yaml", "# stands in for the recipe the context names\n"),
            Data = new DataSpec("idx", new DataSplit(images, labels), new DataSplit(images, labels), 1f / 255),
            Teachers = [],
            Student = new StudentSpec("mlp", null, null, 0),
            Baseline = _dir.File("labels-only.baseline.json"),
            Stages = [],
            Gates = [],
            Outputs = new OutputSpec("student.onnx", []),
        };
        _context = new StageContext(recipe.Path, recipe.HasTeacher ? recipe.Teacher : null, _data, _data, "data-hash", teacherHash: null, teacherLogits: null, 3, NullPipelineReporter.Instance, CancellationToken.None)
        {
            CheckpointRoot = _dir.Dir("checkpoints"),
        };
    }

    public void Dispose()
    {
        _data.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void Asking_for_the_teacher_without_one_fails_naming_the_recipe()
    {
        var hash = Assert.Throws<InvalidOperationException>(() => _context.TeacherHash);
        var logits = Assert.Throws<InvalidOperationException>(() => _context.TeacherSoftTargetLogits(4));

        Assert.All([hash, logits], e => Assert.Contains($"the recipe '{_context.RecipePath}' has none", e.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void Stages_that_train_on_labels_alone_key_without_a_teacher_and_the_others_fail()
    {
        IStage[] labelsOnly =
        [
            new FinetuneStage(new FinetuneOptions()),
            new PruneStage(new PruneOptions { Alpha = 0 }),
            new FactorizeStage(new FactorizeOptions { Alpha = 0 }),
            new PruneStage(new PruneOptions { Alpha = 0.5, RecoveryTeacher = RecoveryTeacher.Dense }),
        ];
        IStage[] teacherNeeded = [new DistillStage(new DistillOptions()), new PruneStage(new PruneOptions { Alpha = 0.5 }), new FactorizeStage(new FactorizeOptions { Alpha = 0.5 })];

        var keys = labelsOnly.Select(stage =>
        {
            var key = new ContentHash().Add("stage", stage.Kind);
            stage.AddToKey(key, _context);
            return key.Finish();
        }).ToList();

        Assert.Equal(4, keys.Distinct(StringComparer.Ordinal).Count());
        Assert.All(teacherNeeded, stage => Assert.Throws<InvalidOperationException>(() => stage.AddToKey(new ContentHash(), _context)));
    }
}
