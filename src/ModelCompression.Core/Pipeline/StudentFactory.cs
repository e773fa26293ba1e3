using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Recipes;
using ModelCompression.Stages;

namespace ModelCompression.Pipeline;

/// <summary>
/// The student the first stage starts from: the file the recipe brings (checked against the data) or a built-in
/// architecture built for the data's samples and the run's classes, cached like a stage's output.
/// </summary>
internal sealed class StudentFactory(Recipe recipe, ArtifactCache cache, HashMemo hashes, string dataHash, Func<LoadedData> data)
{
    /// <summary>
    /// The initial student's file and hash, after checking that the data's token ids fit its embedding tables. Built
    /// before any long work, so that options the data rules out fail fast.
    /// </summary>
    public (string Path, string Hash) Initial(DataSummary summary, int classes, TokenRange tokens)
    {
        var (path, hash) = Build(summary, classes);
        var facts = ModelFacts.Of(cache, path, hash);
        tokens.Check(
            facts.TableTuples,
            facts.Inputs,
            recipe.Student.ModelPath is null ? "built-in student" : "student",
            recipe.Student.ModelPath ?? recipe.Student.Architecture!,
            recipe.Student.ModelPath is null ? "Set compact_vocabulary: true or the student's vocab_size >= {needed} (0 takes the tokenizer's size)." : TeacherOutputs.FixedTableFix);
        return (path, hash);
    }

    /// <summary>
    /// Checks that the student file the recipe brings takes the data's tensors (without a teacher, in ONNX Runtime,
    /// which also says its output width: the classes) and returns the width (0 with a teacher; null for a built-in
    /// student, which has nothing to check yet). Cached as the teacher's check is: only a passed check makes an entry.
    /// </summary>
    public int? CheckSchema()
    {
        if (recipe.Student.ModelPath is not { } studentPath)
        {
            return null;
        }

        var (studentHash, hasTeacher) = (hashes.Model(studentPath), recipe.HasTeacher);
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("student", studentHash).Add("data", dataHash).Add("teacher", hasTeacher ? "yes" : "no").Finish();
        var entry = cache.TryGet("student-schema", key) ?? cache.Put("student-schema", key, _ =>
        {
            if (hasTeacher)
            {
                DataSchema.Bind(data().Train, OnnxRunner.ReadInputs(studentPath), "student", studentPath);
                return new StudentSchema(0);
            }

            using var runner = new OnnxRunner(studentPath, threads: 1);
            runner.Bind(data().Train, "student");
            return new StudentSchema(runner.OutputWidth);
        });
        return ArtifactCache.ReadResult<StudentSchema>(entry).Classes;
    }

    /// <summary>A student file's output width, when the run takes the classes from it.</summary>
    private sealed record StudentSchema(int Classes);

    private (string Path, string Hash) Build(DataSummary summary, int classes)
    {
        if (recipe.Student.ModelPath is { } path)
        {
            return (path, hashes.Model(path));
        }

        var inputs = new ArchitectureInputs([.. summary.SampleShape.Select(d => (int)d)], classes, summary.VocabularySize ?? 0);
        var modelPath = BuiltIn(recipe, cache, inputs, "this data", $"samples of [{string.Join(", ", inputs.SampleShape)}] and {classes} classes");
        return (modelPath, hashes.Model(modelPath));
    }

    /// <summary>
    /// The recipe's built-in student architecture built for <paramref name="inputs"/>, cached by architecture, options
    /// and inputs; <paramref name="forWhat"/> ends the errors of options the inputs rule out ("this data"), and
    /// <paramref name="built"/> the cache entry's summary.
    /// </summary>
    internal static string BuiltIn(Recipe recipe, ArtifactCache cache, ArchitectureInputs inputs, string forWhat, string built)
    {
        var name = recipe.Student.Architecture!;
        var options = recipe.Student.Options;
        var key = new ContentHash()
            .Add("engine", EngineInfo.Version)
            .Add("architecture", name)
            .Add("options", options is null ? string.Empty : System.Text.Json.JsonSerializer.Serialize(options, options.GetType()))
            .Add("inputs", System.Text.Json.JsonSerializer.Serialize(inputs))
            .Finish();
        var entry = cache.TryGet("student", key) ?? cache.Put("student", key, folder =>
        {
            ModelProto model;
            try
            {
                model = ArchitectureRegistry.Build(name, options, inputs);
            }
            catch (InvalidArchitectureOptionsException e)
            {
                throw new CompressionException(
                    [.. e.Problems.Select(p => Diagnostic.Error(DiagnosticCodes.RecipeInvalidValue, $"student architecture '{name}' for {forWhat}: {p}.", recipe.Path, recipe.Student.Line))]);
            }

            OnnxModelFile.Save(model, Path.Combine(folder, ArtifactCache.ModelFile));
            return new StageResult("student", $"built-in {name} for {built}", new Dictionary<string, string>(), null, 0);
        });
        return Path.Combine(entry, ArtifactCache.ModelFile);
    }
}
