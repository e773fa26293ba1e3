using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Stages;

/// <summary>What a stage reads besides its input model; the loader, the plan and the cache key follow it.</summary>
[Flags]
public enum StageReads
{
    /// <summary>Nothing beyond the input model.</summary>
    None = 0,

    /// <summary>The recipe's teacher (its soft targets or its weights).</summary>
    Teacher = 1,

    /// <summary>The first teacher's intermediate tensors (feature hints).</summary>
    TeacherFeatures = 2,

    /// <summary>The stage's own input model as a teacher (self-distillation during recovery).</summary>
    DenseModel = 4,

    /// <summary>The training split.</summary>
    Train = 8,

    /// <summary>The recipe's validation split, when it has one.</summary>
    Validation = 16,

    /// <summary>The recipe's unlabelled split, when it has one.</summary>
    Unlabelled = 32,

    /// <summary>The test split (a probe of the transformed model).</summary>
    Test = 64,
}

/// <summary>
/// Everything the engine knows of one stage kind, declared once in the stage's folder and listed in
/// <see cref="StageCatalog"/>: the loader, the recipe's JSON schema, <c>dotnet compress options</c>, the plan and the
/// pipeline read it here.
/// </summary>
public interface IStageDescriptor
{
    /// <summary>The stage kind: the recipe key, the cache folder and the progress label ("quantize").</summary>
    string Kind { get; }

    /// <summary>The options record ([Option]-annotated properties) the loader binds and the schema describes.</summary>
    Type OptionsType { get; }

    /// <summary>Whether the stage trains the student from where it is (a built-in student must start with one).</summary>
    bool Trains { get; }

    /// <summary>Whether the stage passes its input model through unchanged (generate writes data, not a model).</summary>
    bool KeepsModel { get; }

    /// <summary>What the stage reads with <paramref name="options"/>.</summary>
    StageReads Reads(object options);

    /// <summary>Why the stage needs a teacher with <paramref name="options"/>, in words; null when it needs none.</summary>
    string? TeacherUse(object options);

    /// <summary>
    /// Whether the stage's output graph can differ from its input's in nodes and values (not just weights): checks of
    /// names in later stages cannot be decided before this stage has run.
    /// </summary>
    bool ChangesGraph(object options);

    /// <summary>
    /// Every problem of <paramref name="options"/> the plan can find before anything trains, each at the recipe line of
    /// the option it is about; checks about a graph an earlier stage changes are left to the run (<see cref="PlanView.Defer"/>).
    /// </summary>
    IEnumerable<Diagnostic> Check(object options, StageSite site, PlanView plan);

    /// <summary>Adds what the stage's output depends on, beyond the input model's hash, to its cache key.</summary>
    void AddToKey(ContentHash key, object options, StageContext context);

    /// <summary>The stage that runs <paramref name="options"/>; null for a kind that only sets options of the run (evaluate).</summary>
    IStage? Create(object options, StageSite site);

    /// <summary>
    /// The labels-only twin of a run with <paramref name="options"/> that did <paramref name="run"/>: the same student,
    /// budget and seed on the labels alone, trained beside it so the report can say what the teacher added; null when
    /// the stage has none.
    /// </summary>
    IStage? LabelsOnlyTwin(object options, StageResult run);

    /// <summary>
    /// Why the stage cannot run with <paramref name="options"/> in a task: generation recipe (on a decoder and chat
    /// data), in words; null when it can (the loader reports the reason at the stage's line).
    /// </summary>
    string? GenerationProblem(object options);

    /// <summary>The stage that runs <paramref name="options"/> on a decoder; null for a kind that only sets options of the run (evaluate).</summary>
    IGenerativeStage? CreateGenerative(object options, StageSite site);

    /// <summary>The labels-only twin of a generative run (the student fine-tuned on the gold answers alone, same steps); null when the stage has none.</summary>
    IGenerativeStage? GenerativeLabelsOnlyTwin(object options, StageResult run);
}

/// <summary>
/// The typed base of a descriptor: the object-typed members of <see cref="IStageDescriptor"/> cast once and call the
/// typed ones.
/// </summary>
/// <typeparam name="TOptions">The stage's options record.</typeparam>
public abstract class StageDescriptor<TOptions> : IStageDescriptor
    where TOptions : class, new()
{
    /// <inheritdoc />
    public abstract string Kind { get; }

    /// <inheritdoc />
    public Type OptionsType => typeof(TOptions);

    /// <inheritdoc />
    public virtual bool Trains => false;

    /// <inheritdoc />
    public virtual bool KeepsModel => false;

    /// <summary>What the stage reads besides the teacher (which <see cref="TeacherUse(TOptions)"/> decides).</summary>
    protected abstract StageReads Reads(TOptions options);

    /// <summary>Why the stage needs a teacher, in words (the loader's MC1003 when the recipe names none); null for none.</summary>
    protected virtual string? TeacherUse(TOptions options) => null;

    /// <summary>Whether the output graph can differ from the input's in nodes and values.</summary>
    protected virtual bool ChangesGraph(TOptions options) => false;

    /// <summary>The plan's checks of <paramref name="options"/>.</summary>
    protected virtual IEnumerable<Diagnostic> Check(TOptions options, StageSite site, PlanView plan) => [];

    /// <summary>The stage's cache key contribution.</summary>
    protected abstract void AddToKey(ContentHash key, TOptions options, StageContext context);

    /// <summary>The stage that runs <paramref name="options"/>, or null.</summary>
    protected abstract IStage? Create(TOptions options, StageSite site);

    /// <summary>The labels-only twin of a run with <paramref name="options"/>; none by default.</summary>
    protected virtual IStage? LabelsOnlyTwin(TOptions options, StageResult run) => null;

    /// <summary>Why the stage cannot run on a decoder for task: generation; by default, that it does not yet.</summary>
    protected virtual string? GenerationProblem(TOptions options) =>
        $"{Kind} does not run on decoders yet (stages for task: generation: {string.Join(", ", StageCatalog.All.Where(d => d.CreateGenerative(Activator.CreateInstance(d.OptionsType)!, StageSite.None) is not null).Select(d => d.Kind))}).";

    /// <summary>The stage that runs <paramref name="options"/> on a decoder; none by default.</summary>
    protected virtual IGenerativeStage? CreateGenerative(TOptions options, StageSite site) => null;

    /// <summary>The labels-only twin of a generative run; none by default.</summary>
    protected virtual IGenerativeStage? GenerativeLabelsOnlyTwin(TOptions options, StageResult run) => null;

    /// <inheritdoc />
    StageReads IStageDescriptor.Reads(object options)
    {
        var typed = Cast(options);
        return Reads(typed) | (TeacherUse(typed) is null ? StageReads.None : StageReads.Teacher);
    }

    /// <inheritdoc />
    string? IStageDescriptor.TeacherUse(object options) => TeacherUse(Cast(options));

    /// <inheritdoc />
    bool IStageDescriptor.ChangesGraph(object options) => ChangesGraph(Cast(options));

    /// <inheritdoc />
    IEnumerable<Diagnostic> IStageDescriptor.Check(object options, StageSite site, PlanView plan) => Check(Cast(options), site, plan);

    /// <inheritdoc />
    void IStageDescriptor.AddToKey(ContentHash key, object options, StageContext context) => AddToKey(key, Cast(options), context);

    /// <inheritdoc />
    IStage? IStageDescriptor.Create(object options, StageSite site) => Create(Cast(options), site);

    /// <inheritdoc />
    IStage? IStageDescriptor.LabelsOnlyTwin(object options, StageResult run) => LabelsOnlyTwin(Cast(options), run);

    /// <inheritdoc />
    string? IStageDescriptor.GenerationProblem(object options) => GenerationProblem(Cast(options));

    /// <inheritdoc />
    IGenerativeStage? IStageDescriptor.CreateGenerative(object options, StageSite site) => CreateGenerative(Cast(options), site);

    /// <inheritdoc />
    IGenerativeStage? IStageDescriptor.GenerativeLabelsOnlyTwin(object options, StageResult run) => GenerativeLabelsOnlyTwin(Cast(options), run);

    private TOptions Cast(object options) => options as TOptions
        ?? throw new ArgumentException($"Stage '{Kind}' takes {typeof(TOptions).Name}, not {options?.GetType().Name ?? "null"}.", nameof(options));
}
