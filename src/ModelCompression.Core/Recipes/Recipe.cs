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

    /// <summary>The teachers, at least one; several have their soft targets averaged by weight.</summary>
    public required IReadOnlyList<TeacherSpec> Teachers { get; init; }

    /// <summary>Absolute path of the first teacher: the one reports and gates ('teacher.accuracy') compare with.</summary>
    public string Teacher => Teachers[0].Path;

    /// <summary>The student: a built-in architecture or an ONNX file.</summary>
    public required StudentSpec Student { get; init; }

    /// <summary>The stages, in order.</summary>
    public required IReadOnlyList<StageSpec> Stages { get; init; }

    /// <summary>The gates the final model must pass.</summary>
    public required IReadOnlyList<GateSpec> Gates { get; init; }

    /// <summary>Output names.</summary>
    public required OutputSpec Outputs { get; init; }

    /// <summary>
    /// Absolute path of the baseline file that 'baseline.' gates compare with (written by 'dotnet compress baseline
    /// accept'); it need not exist yet.
    /// </summary>
    public required string Baseline { get; init; }

    /// <summary>Every file the recipe reads (itself included): a build must re-run when one changes.</summary>
    public IEnumerable<string> InputFiles()
    {
        yield return Path;
        foreach (var teacher in Teachers)
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
/// <param name="Path">Absolute path of the ONNX model.</param>
/// <param name="Weight">Relative weight, above 0.</param>
public sealed record TeacherSpec(string Path, double Weight);

/// <summary>One split of the data: inputs and (optionally) labels.</summary>
/// <param name="Inputs">Absolute path of the inputs file.</param>
/// <param name="Labels">Absolute path of the labels file, or null for unlabelled data.</param>
public sealed record DataSplit(string Inputs, string? Labels);

/// <summary>The data sets of a recipe.</summary>
/// <param name="Format">The file format ("idx").</param>
/// <param name="Train">Training split.</param>
/// <param name="Test">Held-out split for evaluation and gates.</param>
/// <param name="Scale">Factor applied to every input value (e.g. 1/255 for bytes).</param>
public sealed record DataSpec(string Format, DataSplit Train, DataSplit Test, float Scale)
{
    /// <summary>Every data file.</summary>
    public IEnumerable<string> Files() =>
        new[] { Train.Inputs, Train.Labels, Test.Inputs, Test.Labels }.OfType<string>();
}

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
public sealed record StageSpec(string Kind, object Options, int Line);

/// <summary>A gate as written in the recipe, with its line.</summary>
/// <param name="Expression">The parsed expression.</param>
/// <param name="Text">The text as written.</param>
/// <param name="Line">Its line in the recipe.</param>
/// <param name="Column">Its column in the recipe.</param>
/// <param name="Significant">Fail only when the model is worse with 95% confidence (accuracy gates).</param>
public sealed record GateSpec(Gates.GateExpression Expression, string Text, int Line, int Column, bool Significant = false);

/// <summary>Where results are written, relative to the output folder.</summary>
/// <param name="Model">File name of the final student model.</param>
/// <param name="Reports">Report formats to write ("json", "md", "html").</param>
public sealed record OutputSpec(string Model, IReadOnlyList<string> Reports);
