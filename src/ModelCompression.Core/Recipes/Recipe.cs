using ModelCompression.Data;
using ModelCompression.Gates;
using ModelCompression.Generation;

namespace ModelCompression.Recipes;

/// <summary>A validated recipe: what to compress, how, which gates must hold, and where results go.</summary>
public sealed record Recipe
{
    /// <summary>Absolute path of the recipe file.</summary>
    public required string Path { get; init; }

    /// <summary>The folder relative paths in the recipe are resolved against.</summary>
    public string Directory => System.IO.Path.GetDirectoryName(Path)!;

    /// <summary>The data sets.</summary>
    public required DataSpec Data { get; init; }

    /// <summary>
    /// The teachers; several have their soft targets averaged by weight. Empty for a recipe that trains on the
    /// labels alone (how a teacher is made from a built-in architecture): the loader then rejects every stage
    /// and gate that needs one.
    /// </summary>
    public required IReadOnlyList<TeacherSpec> Teachers { get; init; }

    /// <summary>Whether the recipe names a teacher.</summary>
    public bool HasTeacher => Teachers.Count > 0;

    /// <summary>
    /// Absolute path of the first teacher: the one reports and gates ('teacher.accuracy') compare with. Throws
    /// when the recipe has none (<see cref="HasTeacher"/>): the loader lets no stage that reads it through.
    /// </summary>
    public string Teacher => HasTeacher
        ? Teachers[0].Path
        : throw new InvalidOperationException($"The recipe '{Path}' has no teacher; only stages that train on labels alone can run it.");

    /// <summary>The endpoint that answers as the teacher (teacher: { endpoint: … }), or null when the teacher is an ONNX file or there is none.</summary>
    public Teachers.EndpointTeacherOptions? EndpointTeacher => HasTeacher ? Teachers[0].Endpoint : null;

    /// <summary>The student: a built-in architecture or an ONNX file.</summary>
    public required StudentSpec Student { get; init; }

    /// <summary>The stages, in order.</summary>
    public required IReadOnlyList<StageSpec> Stages { get; init; }

    /// <summary>The gates the final model must pass.</summary>
    public required IReadOnlyList<GateSpec> Gates { get; init; }

    /// <summary>The recipe's <c>task:</c>, a <see cref="Tasks.TaskCatalog"/> name (classification when it names none).</summary>
    public string Task { get; init; } = Tasks.TaskCatalog.DefaultName;

    /// <summary>The <c>generation:</c> section of a task: generation recipe; null for every other task.</summary>
    public GenerationSettings? Generation { get; init; }

    /// <summary>The recipe's task as the engine knows it (a generation recipe's with its task type's metrics and headline).</summary>
    public Tasks.ITask TaskInfo => Generation is { } generation ? Tasks.GenerationTask.For(generation.Task) : Tasks.TaskCatalog.Get(Task);

    /// <summary>Output names.</summary>
    public required OutputSpec Outputs { get; init; }

    /// <summary>The recipe's 'cache: { remote, mode, credential_env }' (a folder made absolute against the recipe's); null without one.</summary>
    public Common.RemoteCacheOptions? Cache { get; init; }

    /// <summary>The most threads a recipe or the command line may ask for.</summary>
    public const int MaxThreads = 1024;

    /// <summary>
    /// Threads for libtorch and ONNX Runtime ('threads:'); 0 for automatic: the CPUs this process may use (CPU
    /// affinity and cgroup quota). A command line's <c>--threads</c> overrides it.
    /// </summary>
    public int Threads { get; init; }

    /// <summary>
    /// Where ONNX Runtime runs the teacher ('execution_provider: cpu|cuda'; default cpu). A command line's
    /// <c>--execution-provider</c> overrides it.
    /// </summary>
    public Inference.ExecutionProvider ExecutionProvider { get; init; }

    /// <summary>
    /// Absolute path of the baseline file that 'baseline.' gates compare with (written by 'dotnet compress baseline
    /// accept'); it need not exist yet.
    /// </summary>
    public required string Baseline { get; init; }

    /// <summary>Every file the recipe reads (itself included): a build must re-run when one changes.</summary>
    public IEnumerable<string> InputFiles()
    {
        yield return Path;
        foreach (var teacher in Teachers.Where(t => t.Endpoint is null))
        {
            yield return teacher.Path;
        }

        if (Student.ModelPath is not null)
        {
            yield return Student.ModelPath;
        }

        foreach (var file in Data.Files())
        {
            yield return file;
        }
    }
}

/// <summary>A teacher model and the weight of its soft targets among several teachers.</summary>
/// <param name="Path">Absolute path of the ONNX model; for an endpoint teacher, its URL and model name (no file).</param>
/// <param name="Weight">Relative weight, above 0.</param>
/// <param name="Endpoint">The OpenAI-compatible endpoint that answers as the teacher, or null for an ONNX file.</param>
public sealed record TeacherSpec(string Path, double Weight, Teachers.EndpointTeacherOptions? Endpoint = null);

/// <summary>The student model: a built-in architecture, or an ONNX file the user brings.</summary>
/// <param name="Architecture">Built-in architecture name (see <see cref="Architectures.ArchitectureRegistry"/>), or null when <paramref name="ModelPath"/> is set.</param>
/// <param name="Options">The architecture's options record, or null with <paramref name="ModelPath"/>.</param>
/// <param name="ModelPath">Absolute path of a student ONNX file, or null.</param>
/// <param name="Line">The student's line in the recipe, for errors found once the data is known.</param>
public sealed record StudentSpec(string? Architecture, Architectures.IArchitectureOptions? Options, string? ModelPath, int Line);

/// <summary>One stage of the pipeline.</summary>
/// <param name="Kind">The stage kind ("distill", "quantize", "evaluate").</param>
/// <param name="Options">The stage's typed options record.</param>
/// <param name="Line">The stage's line in the recipe.</param>
public sealed partial record StageSpec(string Kind, object Options, int Line);

/// <summary>Where results are written, relative to the output folder.</summary>
/// <param name="Model">File name of the final student model.</param>
/// <param name="Reports">Report formats to write ("json", "md", "html").</param>
public sealed record OutputSpec(string Model, IReadOnlyList<string> Reports);
