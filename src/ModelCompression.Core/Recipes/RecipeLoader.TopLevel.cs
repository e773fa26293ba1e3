using ModelCompression.Diagnostics;
using ModelCompression.Gates;
using ModelCompression.Generation;
using ModelCompression.Inference;
using ModelCompression.Stages;
using ModelCompression.Tasks;
using ModelCompression.Teachers;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// The top level of a recipe: checked against <see cref="RecipeKeys"/> first, then bound into a <see cref="Recipe"/>.
/// Binding reads values quietly (the check has reported every malformed one) and reports only what needs more
/// than one value's shape: files that must exist, gate expressions, names that must be file names.
/// </summary>
public static partial class RecipeLoader
{
    private static Recipe? Read(YamlMappingNode root, YamlSource source, string directory)
    {
        RecipeModelChecker.Check(root, RecipeKeys.Shape, RecipeModelChecker.Root, source);
        var dataNode = YamlSource.Get(root, RecipeKeys.Data) as YamlMappingNode;
        var data = dataNode is null ? null : DataSpecReader.Read(dataNode, source, directory);
        var teachers = ReadTeachers(root, source, directory);
        // A teacher named but unreadable is reported already; only a recipe that names none is held to labels alone.
        // A misspelled 'teacher' (reported as such) names one too: "needs a teacher" on every stage would mislead.
        var keys = RecipeKeys.Shape.Names;
        var hasTeacher = YamlSource.Get(root, RecipeKeys.Teacher) is not null
            || root.Children.Keys.Any(k => k is YamlScalarNode { Value: { } key } && !keys.Contains(key) && Suggestions.Closest(key, keys).Contains(RecipeKeys.Teacher.Name));
        var student = ReadStudent(source.Mapping(root, RecipeKeys.Student.Name, RecipeModelChecker.Root, required: true), source, directory);
        var stages = ReadStages(YamlSource.Get(root, RecipeKeys.Stages), source, root, studentIsBuiltIn: student?.ModelPath is null, hasTeacher);
        // The check has held the task to the catalog's names.
        var task = TaskCatalog.TryGet(YamlSource.Text(root, RecipeKeys.Task) ?? TaskCatalog.DefaultName, out var known) ? known : ClassificationTask.Instance;
        var generation = ReadGeneration(root, source, task, data, student, stages, teachers);
        var gates = ReadGates(YamlSource.Get(root, RecipeKeys.Gates), source, hasTeacher, generation is null ? task : GenerationTask.For(generation.Task));
        var outputs = ReadOutputs(YamlSource.Get(root, RecipeKeys.OutputsSection) as YamlMappingNode, source, source.File);
        var cache = ReadCache(YamlSource.Get(root, RecipeKeys.Cache) as YamlMappingNode, source, directory);
        if (data is null || teachers is null || student is null || source.Problems.Count > 0)
        {
            return null;
        }

        return new Recipe
        {
            Path = source.File,
            Data = data,
            Teachers = teachers,
            Student = student,
            Stages = stages,
            Task = task.Name,
            Generation = generation,
            Gates = gates,
            Outputs = outputs,
            Cache = cache,
            // The check has held threads to its range and the provider to its names; a recipe with problems is never returned.
            Threads = (int)(YamlSource.Number(root, RecipeKeys.Threads) ?? 0),
            ExecutionProvider = ExecutionProviderNames.TryParse(YamlSource.Text(root, RecipeKeys.ExecutionProvider), out var provider) ? provider : ExecutionProvider.Cpu,
            Baseline = Path.GetFullPath(Path.Combine(
                directory,
                YamlSource.Text(root, RecipeKeys.Baseline) ?? RecipeStem(source.File) + ".baseline.json")),
        };
    }

    /// <summary>
    /// The 'generation' section, bound for task: generation (its defaults when the recipe gives none), and the checks
    /// that tie a task to its data, student and stages: chat data, a decoder and the stages that run on decoders for
    /// generation; tensor data, no decoder and no 'generation' section for every other task. Null for other tasks.
    /// </summary>
    private static GenerationSettings? ReadGeneration(YamlMappingNode root, YamlSource source, ITask task, Data.DataSpec? data, StudentSpec? student, List<StageSpec> stages, List<TeacherSpec>? teachers)
    {
        var node = YamlSource.Get(root, RecipeKeys.Generation);
        var isGeneration = task is GenerationTask;
        var decoder = student?.Architecture == Architectures.DecoderBuilder.Name;
        var taskNode = YamlSource.Get(root, RecipeKeys.Task) ?? root;
        if (!isGeneration)
        {
            if (node is not null)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"'{RecipeKeys.Generation.Name}' applies to task: generation, not {task.Name}.", node);
            }

            if (data?.Format == Data.DataLoader.ChatFormat)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Chat data is for task: generation; task {task.Name} reads tensors (idx, npy, npz, csv, jsonl).", taskNode);
            }

            if (teachers is [{ Endpoint: { } endpoint }, ..])
            {
                CheckEndpointClassifier(source, task, data, stages, endpoint, YamlSource.Get(root, RecipeKeys.Teacher) ?? taskNode);
            }

            if (decoder)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"The '{Architectures.DecoderBuilder.Name}' architecture writes text (task: generation); a {task.Name} student is one of: {string.Join(", ", Architectures.ArchitectureRegistry.Names.Where(n => n != Architectures.DecoderBuilder.Name))}.", taskNode);
            }

            return null;
        }

        if (node is not null and not YamlMappingNode)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"'{RecipeKeys.Generation.Name}' must be a mapping of options.", node);
            return null;
        }

        var settings = OptionsBinder.Bind<GenerationSettings>(node as YamlMappingNode, $"'{RecipeKeys.Generation.Name}'", source);
        foreach (var (key, problem) in settings.Problems())
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{RecipeKeys.Generation.Name}.{key}: {problem}", LineNode(node, key) ?? node ?? root);
        }

        if (settings.Tokenizer == Text.GenerationTokenizerKind.SentencePiece && settings.TokenizerSource is { } model
            && !File.Exists(Path.Combine(Path.GetDirectoryName(source.File)!, model)))
        {
            source.Error(DiagnosticCodes.RecipeFileNotFound, $"{RecipeKeys.Generation.Name}.tokenizer_source '{model}' does not exist.", LineNode(node, "tokenizer_source") ?? root);
        }

        if (data is not null && data.Format != Data.DataLoader.ChatFormat)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"task: generation reads conversations: give data 'format: {Data.DataLoader.ChatFormat}' (JSONL in the OpenAI chat format or prompt/completion), not {data.Format}.", taskNode);
        }

        if (student is { Architecture: { } architecture } && !decoder)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"task: generation needs a student that writes text: architecture '{Architectures.DecoderBuilder.Name}' or {{ model: decoder.onnx }}, not '{architecture}'.", taskNode);
        }

        foreach (var stage in stages)
        {
            if (StageCatalog.Get(stage.Kind).GenerationProblem(stage.Options) is { } problem)
            {
                source.Problems.Add(Diagnostic.Error(DiagnosticCodes.RecipeInvalidValue, $"Stage '{stage.Kind}' with task: generation: {problem}", source.File, stage.Line, 1));
            }
        }

        CheckTeacherTokenizer(source, settings, stages, teachers);
        CheckEndpointTeacher(source, stages, teachers);

        return settings;
    }

    /// <summary>The node of <paramref name="key"/>'s value in <paramref name="node"/>, for an error at its line.</summary>
    private static YamlNode? LineNode(YamlNode? node, string key) =>
        node is YamlMappingNode mapping && mapping.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    /// <summary>The recipe's file name without .compress.yaml: what the default output names start with.</summary>
    private static string RecipeStem(string recipePath) =>
        Path.GetFileNameWithoutExtension(recipePath).Replace(".compress", string.Empty, StringComparison.Ordinal);

    /// <summary>
    /// 'teacher: file', a mapping with 'endpoint' (an OpenAI-compatible server that answers as the teacher), or a list
    /// of files or of { model: file, weight: w } whose soft targets are averaged; none
    /// when the recipe has no 'teacher' (it trains on labels alone). Null when one is missing or malformed (reported).
    /// </summary>
    private static List<TeacherSpec>? ReadTeachers(YamlMappingNode root, YamlSource source, string directory)
    {
        var node = YamlSource.Get(root, RecipeKeys.Teacher);
        switch (node)
        {
            case null:
                return [];
            case YamlScalarNode:
                var file = YamlSource.Text(root, RecipeKeys.Teacher) is { } text
                    ? source.ExistingFile(text, node, $"{RecipeKeys.Teacher.Name} in {RecipeModelChecker.Root}", directory)
                    : null;
                return file is null ? null : [new TeacherSpec(file, 1)];
            case YamlMappingNode mapping when !mapping.Children.ContainsKey(new YamlScalarNode("endpoint")):
                source.Error(
                    DiagnosticCodes.RecipeInvalidValue,
                    $"'{RecipeKeys.Teacher.Name}' as a mapping is a teacher behind an endpoint and needs 'endpoint: URL' (an OpenAI-compatible server) with 'model: NAME'; an ONNX teacher is a file ('{RecipeKeys.Teacher.Name}: teacher.onnx') or a list ('{RecipeKeys.Teacher.Name}: [{{ model: a.onnx, weight: 2 }}, b.onnx]').",
                    mapping);
                return null;
            case YamlMappingNode endpoint:
                var options = OptionsBinder.Bind<EndpointTeacherOptions>(endpoint, $"'{RecipeKeys.Teacher.Name}'", source);
                foreach (var (key, problem) in options.Problems())
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"{RecipeKeys.Teacher.Name}.{key}: {problem}", LineNode(endpoint, key) ?? endpoint);
                }

                return [new TeacherSpec($"{options.Endpoint} ({options.Model})", 1, options)];
            case YamlSequenceNode { Children.Count: > 0 } list:
                var teachers = new List<TeacherSpec>();
                foreach (var item in list)
                {
                    if (item is YamlScalarNode { Value: { Length: > 0 } value } && source.ExistingFile(value, item, RecipeKeys.Teacher.Name, directory) is { } path)
                    {
                        teachers.Add(new TeacherSpec(path, 1));
                    }
                    else if (item is YamlMappingNode mapping
                        && YamlSource.Text(mapping, RecipeKeys.TeacherEntry.Model) is { } model
                        && source.ExistingFile(model, YamlSource.Get(mapping, RecipeKeys.TeacherEntry.Model)!, $"{RecipeKeys.TeacherEntry.Model.Name} in a teacher", directory) is { } entry
                        && (YamlSource.Get(mapping, RecipeKeys.TeacherEntry.Weight) is null || YamlSource.Number(mapping, RecipeKeys.TeacherEntry.Weight) is > 0))
                    {
                        teachers.Add(new TeacherSpec(entry, YamlSource.Number(mapping, RecipeKeys.TeacherEntry.Weight) ?? 1));
                    }
                }

                return teachers.Count == list.Children.Count ? teachers : null;
            default:
                return null;
        }
    }

    private static List<GateSpec> ReadGates(YamlNode? node, YamlSource source, bool hasTeacher, ITask task)
    {
        var gates = new List<GateSpec>();
        if (node is not YamlSequenceNode sequence)
        {
            return gates;
        }

        foreach (var item in sequence)
        {
            // "- accuracy >= 0.85", or "- { gate: accuracy >= baseline.accuracy, significant: true }".
            var (expressionNode, significant) = item is YamlMappingNode mapping
                ? (YamlSource.Get(mapping, RecipeKeys.GateEntry.Gate), YamlSource.Bool(mapping, RecipeKeys.GateEntry.Significant) ?? false)
                : (item, false);
            if (expressionNode is not YamlScalarNode { Value: { Length: > 0 } text })
            {
                continue;
            }

            if (GateExpression.TryParse(text, out var gate, out var error))
            {
                if (GateRules.Problem(gate!, text, significant, task) is { } problem)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidGate, $"{problem}.", item);
                    continue;
                }

                if (!hasTeacher && gate!.NeedsTeacher)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidGate, $"Gate '{text}' compares with the teacher, and the recipe names none: add '{RecipeKeys.Teacher.Name}:' to the recipe, or gate on the model's own metrics (e.g. 'accuracy >= 0.85').", expressionNode);
                    continue;
                }

                gates.Add(new GateSpec(gate!, text, YamlSource.Line(expressionNode) ?? 0, YamlSource.Column(expressionNode) ?? 0, significant));
            }
            else
            {
                source.Error(DiagnosticCodes.RecipeInvalidGate, $"Invalid gate: {error}.", item);
            }
        }

        return gates;
    }

    /// <summary>
    /// 'cache: { remote, mode, credential_env }', or null without it. The location is checked here, at its line (a
    /// container name, no SAS token in a URL); a folder is made absolute against the recipe's folder.
    /// </summary>
    private static Common.RemoteCacheOptions? ReadCache(YamlMappingNode? node, YamlSource source, string directory)
    {
        if (node is null || YamlSource.Text(node, RecipeKeys.CacheSection.Remote) is not { } remote)
        {
            return null;
        }

        var remoteNode = YamlSource.Get(node, RecipeKeys.CacheSection.Remote)!;
        if (Common.RemoteCacheOptions.LocationProblem(remote) is { } problem)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{RecipeKeys.Cache.Name}.{RecipeKeys.CacheSection.Remote.Name}: {problem}.", remoteNode);
        }

        var variable = YamlSource.Text(node, RecipeKeys.CacheSection.CredentialEnv);
        if (variable is not null && !System.Text.RegularExpressions.Regex.IsMatch(variable, "^[A-Za-z_][A-Za-z0-9_]*$"))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{RecipeKeys.Cache.Name}.{RecipeKeys.CacheSection.CredentialEnv.Name} '{variable}' is not an environment variable's name (letters, digits and '_'): name the variable, never put the credential itself in a recipe.", YamlSource.Get(node, RecipeKeys.CacheSection.CredentialEnv)!);
        }

        // The check has held the mode to its names.
        Common.RemoteCacheMode? mode = Common.RemoteCacheOptions.TryParseMode(YamlSource.Text(node, RecipeKeys.CacheSection.Mode), out var parsed) ? parsed : null;
        return new Common.RemoteCacheOptions(Common.RemoteCacheOptions.Absolute(remote, directory), mode, variable);
    }

    private static OutputSpec ReadOutputs(YamlMappingNode? node, YamlSource source, string recipePath)
    {
        var model = (node is null ? null : YamlSource.Text(node, RecipeKeys.Outputs.Model)) ?? RecipeStem(recipePath) + ".student.onnx";
        if (Path.GetFileName(model) != model || !model.EndsWith(".onnx", StringComparison.Ordinal))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"{RecipeKeys.OutputsSection.Name}.{RecipeKeys.Outputs.Model.Name} '{model}' must be a file name ending in .onnx (it is written to the output folder).", node is null ? null : YamlSource.Get(node, RecipeKeys.Outputs.Model));
        }

        IReadOnlyList<string> reports = node is not null && YamlSource.Get(node, RecipeKeys.Outputs.Report) is YamlSequenceNode list
            ? [.. list.Children.OfType<YamlScalarNode>().Select(f => f.Value!).Where(f => RecipeKeys.Outputs.ReportFormats.Contains(f, StringComparer.Ordinal))]
            : RecipeKeys.Outputs.DefaultReports;
        return new OutputSpec(model, [.. reports]);
    }
}
