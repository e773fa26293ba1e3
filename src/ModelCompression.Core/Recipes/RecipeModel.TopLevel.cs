using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Tasks;

namespace ModelCompression.Recipes;

/// <summary>
/// The recipe's top level, described once (see <see cref="RecipeKey"/>). The student and the stages are described by
/// their own [Option] records; here they are only named, with their schema supplied by <see cref="RecipeSchema"/>.
/// </summary>
internal static class RecipeKeys
{
    /// <summary>
    /// The tasks 'task' accepts, in the order messages list them: the task catalog's names, the one place they live.
    /// </summary>
    public static IReadOnlyList<string> Tasks => TaskCatalog.Names;

    /// <summary>A teacher of a list: <c>{ model, weight }</c>.</summary>
    public static class TeacherEntry
    {
        /// <summary>'model'.</summary>
        public static readonly RecipeKey Model = new("model", "An ONNX file.", new TextShape()) { Required = true };

        /// <summary>'weight'.</summary>
        public static readonly RecipeKey Weight = new("weight", "The weight of this teacher's soft targets among the teachers'.", new NumberShape(Whole: false) { Min = 0, MinExclusive = true }) { Default = 1 };

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Model, Weight]) { Description = "A weighted teacher." };
    }

    /// <summary>A gate of the list in its long form: <c>{ gate, significant }</c>.</summary>
    public static class GateEntry
    {
        /// <summary>'gate'.</summary>
        public static readonly RecipeKey Gate = new("gate", "The expression, e.g. accuracy >= baseline.accuracy.", new TextShape()) { Required = true, InvalidCode = DiagnosticCodes.RecipeInvalidGate };

        /// <summary>'significant'.</summary>
        public static readonly RecipeKey Significant = new(
            "significant",
            "For 'accuracy >= …' gates: fail only when the model is significantly worse (a paired test or a bootstrap interval of accuracy).",
            new BoolShape())
        { Default = false, InvalidCode = DiagnosticCodes.RecipeInvalidGate };

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Gate, Significant]) { Description = "A gate with options." };
    }

    /// <summary>The student's keys of its own; a built-in architecture's options sit beside 'architecture' (its [Option] record).</summary>
    public static class StudentEntry
    {
        /// <summary>'model'.</summary>
        public static readonly RecipeKey Model = new("model", "An ONNX file.", new TextShape()) { Required = true };

        /// <summary>'architecture'.</summary>
        public static readonly RecipeKey Architecture = new("architecture", "A built-in architecture; its options sit beside it.", new TextShape()) { Required = true };

        /// <summary>The student as a file: <c>{ model: file.onnx }</c>.</summary>
        public static readonly MappingShape File = new([Model]) { Description = "Any float ONNX graph (e.g. exported by PyTorch), trained as it is." };
    }

    /// <summary>'outputs: { model, report }'.</summary>
    public static class Outputs
    {
        /// <summary>The report formats, in the order they are written.</summary>
        public static readonly IReadOnlyList<string> ReportFormats = ["json", "md", "html"];

        /// <summary>The reports written when 'report' is not given.</summary>
        public static readonly IReadOnlyList<string> DefaultReports = ["json", "md"];

        /// <summary>'model'.</summary>
        public static readonly RecipeKey Model = new("model", "The file name of the final student, ending in .onnx, written to the output folder (default <recipe>.student.onnx).", new TextShape());

        /// <summary>'report'.</summary>
        public static readonly RecipeKey Report = new("report", "The report formats to write.", new ListShape(new EnumShape(() => ReportFormats) { Invalid = _ => $"Report formats: {string.Join(", ", ReportFormats)}." })) { Default = DefaultReports };

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Model, Report]);
    }

    /// <summary>'cache: { remote, mode, credential_env }': the remote stage cache behind the local one.</summary>
    public static class CacheSection
    {
        /// <summary>'remote'.</summary>
        public static readonly RecipeKey Remote = new(
            "remote",
            "Where the shared stage cache is: a folder (a network share; relative to the recipe), azure://container/prefix (the credential variable holds a connection string), or https://account.blob.core.windows.net/container/prefix (it holds a SAS token, or nothing for a public container). 'dotnet compress run --remote-cache' overrides it.",
            new TextShape())
        { Required = true };

        /// <summary>'mode'.</summary>
        public static readonly RecipeKey Mode = new(
            "mode",
            "read: take entries, never write (pull requests: a fork cannot poison the cache); read-write: also upload what this run builds (trusted builds); off. '--remote-cache-mode' overrides it.",
            new EnumShape(() => Common.RemoteCacheOptions.ModeNames) { IgnoreCase = true })
        { Default = Common.RemoteCacheOptions.ModeName(Common.RemoteCacheOptions.DefaultMode) };

        /// <summary>'credential_env'.</summary>
        public static readonly RecipeKey CredentialEnv = new(
            "credential_env",
            "The environment variable holding the connection string or SAS token; the value itself is never written anywhere.",
            new TextShape())
        { Default = Common.RemoteCacheOptions.DefaultCredentialVariable };

        /// <summary>The mapping.</summary>
        public static readonly MappingShape Shape = new([Remote, Mode, CredentialEnv]) { Description = "The remote stage cache, shared by a CI fleet: local first, then remote." };
    }

    private static TextShape OnnxFile() => new() { Description = "An ONNX file." };

    /// <summary>'task'.</summary>
    public static readonly RecipeKey Task = new(
        "task",
        "What the model predicts, which decides the loss, the metrics and the gates.",
        new EnumShape(() => Tasks) { Invalid = task => $"task '{task}' is not supported{Suggestions.Hint(task, Tasks, "Tasks")}" })
    { Default = TaskCatalog.DefaultName };

    /// <summary>'data'.</summary>
    public static readonly RecipeKey Data = new("data", DataKeys.Shape.Description!, DataKeys.Shape) { Required = true };

    /// <summary>'generation'.</summary>
    public static readonly RecipeKey Generation = new(
        "generation",
        "task: generation only: the kind of answers and how they are scored, the tokenizer, the chat template and the lengths.",
        new ExternalShape(RecipeSchema.GenerationSchema));

    /// <summary>'teacher'.</summary>
    public static readonly RecipeKey Teacher = new(
        "teacher",
        "One ONNX file, or several whose soft targets are averaged by weight, or (task: generation) an OpenAI-compatible endpoint that answers the prompts; without one, the recipe trains on the labels alone.",
        new OneOfShape([
            OnnxFile(),
            new ListShape(new OneOfShape([OnnxFile(), TeacherEntry.Shape])) { MinItems = 1, Description = "Several teachers." },
            new ExternalShape(RecipeSchema.EndpointTeacherSchema) { MappingOnly = true }]));

    /// <summary>'student'.</summary>
    public static readonly RecipeKey Student = new("student", "A built-in architecture with its options, or { model: file.onnx }.", new ExternalShape(RecipeSchema.StudentSchema)) { Required = true };

    /// <summary>'stages'.</summary>
    public static readonly RecipeKey Stages = new("stages", "The stages, run in order, e.g. - distill: { epochs: 10 }.", new ExternalShape(RecipeSchema.StagesSchema)) { Required = true };

    /// <summary>'gates'.</summary>
    public static readonly RecipeKey Gates = new(
        "gates",
        "Conditions the final model must meet, or the build fails.",
        new ListShape(new OneOfShape([new TextShape { Description = "e.g. accuracy >= teacher.accuracy - 0.02" }, GateEntry.Shape])))
    { InvalidCode = DiagnosticCodes.RecipeInvalidGate };

    /// <summary>'baseline'.</summary>
    public static readonly RecipeKey Baseline = new("baseline", "The baseline file 'baseline.' gates compare with (default <model>.baseline.json next to the recipe).", new TextShape());

    /// <summary>'outputs'.</summary>
    public static readonly RecipeKey OutputsSection = new("outputs", "The names of what is written.", Outputs.Shape);

    /// <summary>'threads'.</summary>
    public static readonly RecipeKey Threads = new(
        "threads",
        "Threads for libtorch and ONNX Runtime; 0: the CPUs this process may use (CPU affinity, cgroup quota). 'dotnet compress run --threads' overrides it.",
        new NumberShape(Whole: true) { Min = 0, Max = Recipe.MaxThreads })
    { Default = 0 };

    /// <summary>'execution_provider'.</summary>
    public static readonly RecipeKey ExecutionProvider = new(
        "execution_provider",
        "Where ONNX Runtime runs the teacher (its logits, hint features and evaluation): cpu, or cuda (ONNX Runtime's GPU build from the NuGet packages folder; an NVIDIA driver, CUDA 13 and cuDNN 9). Students are evaluated on the CPU. 'dotnet compress run --execution-provider' overrides it.",
        new EnumShape(() => ExecutionProviderNames.All) { IgnoreCase = true })
    { Default = ExecutionProviderNames.All[0] };

    /// <summary>'cache'.</summary>
    public static readonly RecipeKey Cache = new("cache", CacheSection.Shape.Description!, CacheSection.Shape);

    /// <summary>The top level, in the order messages list its keys.</summary>
    public static readonly MappingShape Shape = new([Task, Data, Generation, Teacher, Student, Stages, Gates, Baseline, OutputsSection, Threads, ExecutionProvider, Cache]);
}
