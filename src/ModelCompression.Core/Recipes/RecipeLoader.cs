using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Gates;
using ModelCompression.Tasks;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// Reads and validates a recipe file. Every problem is collected with its line and column and reported
/// together (MC1xxx) before any work starts.
/// </summary>
public static partial class RecipeLoader
{
    /// <summary>Loads <paramref name="path"/>; throws <see cref="CompressionException"/> listing every problem.</summary>
    public static Recipe Load(string path)
    {
        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
        {
            throw CompressionException.Error(DiagnosticCodes.RecipeFileNotFound, $"Recipe '{path}' does not exist.", fullPath);
        }

        var source = new YamlSource(fullPath);
        YamlMappingNode root;
        var text = File.ReadAllText(fullPath);
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(text));
            root = stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode mapping
                ? mapping
                : throw CompressionException.Error(DiagnosticCodes.RecipeSyntax, "The recipe must be a YAML mapping (key: value lines).", fullPath, 1, 1);
        }
        catch (YamlException e)
        {
            throw new CompressionException(YamlSyntaxError.From(fullPath, text, e), e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner throws this (with no position) when the file ends inside an open flow collection.
            throw new CompressionException(YamlSyntaxError.UnexpectedEnd(fullPath, text), e);
        }

        var recipe = Read(root, source, Path.GetDirectoryName(fullPath)!);
        if (source.Problems.Count > 0 || recipe is null)
        {
            throw new CompressionException(source.Problems);
        }

        return recipe;
    }

    private static Recipe? Read(YamlMappingNode root, YamlSource source, string directory)
    {
        string[] keys = ["task", "data", "teacher", "student", "stages", "gates", "baseline", "outputs", "threads", "execution_provider"];
        source.CheckKeys(root, "the recipe", keys);
        var taskName = source.String(root, "task", "the recipe", required: false) ?? TaskCatalog.DefaultName;
        var task = TaskCatalog.TryGet(taskName, out var known) ? known : null;
        if (task is null)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"task '{taskName}' is not known. Tasks: {string.Join(", ", TaskCatalog.Names)}.", YamlSource.Get(root, "task"));
        }

        var data = DataSpecReader.Read(source.Mapping(root, "data", "the recipe", required: true), source, directory);
        var teachers = ReadTeachers(root, source, directory);
        // A teacher named but unreadable is reported already; only a recipe that names none is held to labels alone.
        // A misspelled 'teacher' (reported as such) names one too: "needs a teacher" on every stage would mislead.
        var hasTeacher = YamlSource.Get(root, "teacher") is not null
            || root.Children.Keys.Any(k => k is YamlScalarNode { Value: { } key } && !keys.Contains(key) && Suggestions.Closest(key, keys).Contains("teacher"));
        var student = ReadStudent(source.Mapping(root, "student", "the recipe", required: true), source, directory);
        var stages = ReadStages(YamlSource.Get(root, "stages"), source, root, studentIsBuiltIn: student?.ModelPath is null, hasTeacher);
        var gates = ReadGates(YamlSource.Get(root, "gates"), source, hasTeacher, task ?? ClassificationTask.Instance);
        var outputs = ReadOutputs(source.Mapping(root, "outputs", "the recipe", required: false), source, source.File);
        var threads = ReadThreads(root, source);
        var executionProvider = ExecutionProviderKey.Read(root, source);
        if (data is null || teachers is null || student is null || task is null || source.Problems.Count > 0)
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
            Gates = gates,
            Outputs = outputs,
            Threads = threads,
            ExecutionProvider = executionProvider,
            Baseline = Path.GetFullPath(Path.Combine(
                directory,
                source.String(root, "baseline", "the recipe", required: false)
                    ?? Path.GetFileNameWithoutExtension(source.File).Replace(".compress", string.Empty, StringComparison.Ordinal) + ".baseline.json")),
        };
    }

    /// <summary>'threads: n', 0 (automatic) to <see cref="Recipe.MaxThreads"/>; 0 when absent or invalid (reported).</summary>
    private static int ReadThreads(YamlMappingNode root, YamlSource source)
    {
        var node = YamlSource.Get(root, "threads");
        if (node is null)
        {
            return 0;
        }

        if (node is YamlScalarNode { Value: { } text }
            && int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var threads)
            && threads <= Recipe.MaxThreads)
        {
            return threads;
        }

        source.Error(DiagnosticCodes.RecipeInvalidValue, $"'threads' must be a whole number from 0 (automatic: the CPUs this process may use) to {Recipe.MaxThreads}, not '{(node as YamlScalarNode)?.Value ?? node.NodeType.ToString()}'.", node);
        return 0;
    }

    /// <summary>
    /// 'teacher: file', or a list of files or of { model: file, weight: w } whose soft targets are averaged; none
    /// when the recipe has no 'teacher' (it trains on labels alone).
    /// </summary>
    private static List<TeacherSpec>? ReadTeachers(YamlMappingNode root, YamlSource source, string directory)
    {
        var node = YamlSource.Get(root, "teacher");
        if (node is null)
        {
            return [];
        }

        if (node is YamlScalarNode)
        {
            var path = source.ExistingFile(root, "teacher", "the recipe", directory, required: true);
            return path is null ? null : [new TeacherSpec(path, 1)];
        }

        if (node is not YamlSequenceNode { Children.Count: > 0 } list)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "'teacher' must be an ONNX file, or a list of files or of { model: file, weight: w }.", node);
            return null;
        }

        var teachers = new List<TeacherSpec>();
        foreach (var item in list)
        {
            if (item is YamlScalarNode { Value: { Length: > 0 } value })
            {
                var path = source.ExistingFile(value, item, "teacher", directory);
                if (path is not null)
                {
                    teachers.Add(new TeacherSpec(path, 1));
                }
            }
            else if (item is YamlMappingNode mapping)
            {
                source.CheckKeys(mapping, "a teacher", "model", "weight");
                var path = source.ExistingFile(mapping, "model", "a teacher", directory, required: true);
                var weight = source.Number(mapping, "weight", "a teacher") ?? 1;
                if (weight <= 0)
                {
                    source.Error(DiagnosticCodes.RecipeInvalidValue, $"A teacher's weight must be above 0, not {weight.ToString(System.Globalization.CultureInfo.InvariantCulture)}.", YamlSource.Get(mapping, "weight"));
                }
                else if (path is not null)
                {
                    teachers.Add(new TeacherSpec(path, weight));
                }
            }
            else
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, "A teacher in the list is a file or { model: file, weight: w }.", item);
            }
        }

        return teachers.Count == list.Children.Count ? teachers : null;
    }

    private static StudentSpec? ReadStudent(YamlMappingNode? node, YamlSource source, string directory)
    {
        if (node is null)
        {
            return null;
        }

        var line = YamlSource.Line(node) ?? 0;
        if (YamlSource.Get(node, "model") is not null)
        {
            source.CheckKeys(node, "student", "model");
            var modelPath = source.ExistingFile(node, "model", "student", directory, required: true);
            return modelPath is null ? null : new StudentSpec(null, null, modelPath, line);
        }

        var architecture = source.String(node, "architecture", "student", required: false);
        if (architecture is null)
        {
            source.Error(DiagnosticCodes.RecipeMissingKey, $"student needs 'architecture' (built in: {string.Join(", ", ArchitectureRegistry.Names)}) or 'model' (an ONNX file).", node);
            return null;
        }

        if (!ArchitectureRegistry.TryGet(architecture, out var info))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"student architecture '{architecture}' is not built in{Suggestions.Hint(architecture, [.. ArchitectureRegistry.Names], "Built in")}", YamlSource.Get(node, "architecture"));
            return null;
        }

        // Every other key is an option of the architecture.
        var optionsNode = new YamlMappingNode();
        foreach (var (key, value) in node.Children)
        {
            if (key is not YamlScalarNode { Value: "architecture" })
            {
                optionsNode.Add(key, value);
            }
        }

        var options = (IArchitectureOptions)OptionsBinder.Bind(info.OptionsType, optionsNode, $"student architecture '{architecture}'", source);
        return new StudentSpec(info.Name, options, null, line);
    }

    private static List<GateSpec> ReadGates(YamlNode? node, YamlSource source, bool hasTeacher, ITask task)
    {
        var gates = new List<GateSpec>();
        if (node is null)
        {
            return gates;
        }

        if (node is not YamlSequenceNode sequence)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "'gates' must be a list of expressions such as '- accuracy >= 0.85'.", node);
            return gates;
        }

        foreach (var item in sequence)
        {
            // "- accuracy >= 0.85", or "- { gate: accuracy >= baseline.accuracy, significant: true }".
            var significant = false;
            var expressionNode = item;
            if (item is YamlMappingNode mapping)
            {
                source.CheckKeys(mapping, "a gate", "gate", "significant");
                expressionNode = YamlSource.Get(mapping, "gate") ?? item;
                if (YamlSource.Get(mapping, "significant") is { } flag)
                {
                    if (flag is YamlScalarNode { Value: "true" or "false" } yes)
                    {
                        significant = yes.Value == "true";
                    }
                    else
                    {
                        source.Error(DiagnosticCodes.RecipeInvalidGate, "'significant' is true or false.", flag);
                    }
                }
            }

            if (expressionNode is not YamlScalarNode { Value: { } text })
            {
                source.Error(DiagnosticCodes.RecipeInvalidGate, "A gate is one expression, such as 'accuracy >= 0.85', or { gate: expression, significant: true }.", item);
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
                    source.Error(DiagnosticCodes.RecipeInvalidGate, $"Gate '{text}' compares with the teacher, and the recipe names none: add 'teacher:' to the recipe, or gate on the model's own metrics (e.g. 'accuracy >= 0.85').", expressionNode);
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

    private static OutputSpec ReadOutputs(YamlMappingNode? node, YamlSource source, string recipePath)
    {
        var defaultModel = Path.GetFileNameWithoutExtension(recipePath).Replace(".compress", string.Empty, StringComparison.Ordinal) + ".student.onnx";
        if (node is null)
        {
            return new OutputSpec(defaultModel, ["json", "md"]);
        }

        source.CheckKeys(node, "outputs", "model", "report");
        var model = source.String(node, "model", "outputs", required: false) ?? defaultModel;
        if (Path.GetFileName(model) != model || !model.EndsWith(".onnx", StringComparison.Ordinal))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"outputs.model '{model}' must be a file name ending in .onnx (it is written to the output folder).", YamlSource.Get(node, "model"));
        }

        var reports = new List<string>();
        switch (YamlSource.Get(node, "report"))
        {
            case null:
                reports.AddRange(["json", "md"]);
                break;
            case YamlSequenceNode list:
                foreach (var item in list)
                {
                    if (item is YamlScalarNode { Value: "json" or "md" or "html" } format)
                    {
                        reports.Add(format.Value!);
                    }
                    else
                    {
                        source.Error(DiagnosticCodes.RecipeInvalidValue, "Report formats: json, md, html.", item);
                    }
                }

                break;
            case var other:
                source.Error(DiagnosticCodes.RecipeInvalidValue, "outputs.report must be a list, e.g. [json, md, html].", other);
                break;
        }

        return new OutputSpec(model, reports);
    }
}
