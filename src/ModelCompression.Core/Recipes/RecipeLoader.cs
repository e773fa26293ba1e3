using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Gates;
using ModelCompression.Stages;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// Reads and validates a recipe file. Every problem is collected with its line and column and reported
/// together (MC1xxx) before any work starts.
/// </summary>
public static class RecipeLoader
{
    /// <summary>The stage kinds a recipe may name, with their options types.</summary>
    public static IReadOnlyDictionary<string, Type> StageOptionTypes { get; } = new Dictionary<string, Type>(StringComparer.Ordinal)
    {
        ["distill"] = typeof(DistillOptions),
        ["prune"] = typeof(PruneOptions),
        ["factorize"] = typeof(FactorizeOptions),
        ["quantize"] = typeof(QuantizeOptions),
        ["evaluate"] = typeof(EvaluateOptions),
    };

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
        try
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(fullPath))
            {
                stream.Load(reader);
            }

            root = stream.Documents.Count > 0 && stream.Documents[0].RootNode is YamlMappingNode mapping
                ? mapping
                : throw CompressionException.Error(DiagnosticCodes.RecipeSyntax, "The recipe must be a YAML mapping (key: value lines).", fullPath, 1, 1);
        }
        catch (YamlException e)
        {
            throw CompressionException.Error(DiagnosticCodes.RecipeSyntax, $"Invalid YAML: {e.InnerException?.Message ?? e.Message}", fullPath, (int)e.Start.Line, (int)e.Start.Column);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner throws this (with no position) when the file ends inside an open flow
            // collection such as "train: [a, b": report it as a syntax error at the end of the file.
            var lines = Math.Max(1, File.ReadAllLines(fullPath).Length);
            throw CompressionException.Error(DiagnosticCodes.RecipeSyntax, "Invalid YAML: the file ends unexpectedly (is a '[', '{' or quote left open?).", fullPath, lines, 1);
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
        source.CheckKeys(root, "the recipe", "task", "data", "teacher", "student", "stages", "gates", "outputs");
        var task = source.String(root, "task", "the recipe", required: false) ?? "classification";
        if (task != "classification")
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"task '{task}' is not supported: this version does classification.", YamlSource.Get(root, "task"));
        }

        var data = ReadData(source.Mapping(root, "data", "the recipe", required: true), source, directory);
        var teacher = source.ExistingFile(root, "teacher", "the recipe", directory, required: true);
        var student = ReadStudent(source.Mapping(root, "student", "the recipe", required: true), source, directory);
        var stages = ReadStages(YamlSource.Get(root, "stages"), source, root);
        var gates = ReadGates(YamlSource.Get(root, "gates"), source);
        var outputs = ReadOutputs(source.Mapping(root, "outputs", "the recipe", required: false), source, source.File);
        if (data is null || teacher is null || student is null || source.Problems.Count > 0)
        {
            return null;
        }

        return new Recipe
        {
            Path = source.File,
            Data = data,
            Teacher = teacher,
            Student = student,
            Stages = stages,
            Gates = gates,
            Outputs = outputs,
        };
    }

    private static DataSpec? ReadData(YamlMappingNode? node, YamlSource source, string directory)
    {
        if (node is null)
        {
            return null;
        }

        source.CheckKeys(node, "data", "format", "train", "test", "scale");
        var format = source.String(node, "format", "data", required: true);
        if (format is not null and not "idx")
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"data format '{format}' is not supported: this version reads idx.", YamlSource.Get(node, "format"));
        }

        var scale = source.Number(node, "scale", "data") ?? 1.0;
        var train = ReadSplit(source.Mapping(node, "train", "data", required: true), "data.train", source, directory);
        var test = ReadSplit(source.Mapping(node, "test", "data", required: true), "data.test", source, directory);
        return train is null || test is null || format is null ? null : new DataSpec(format, train, test, (float)scale);
    }

    private static DataSplit? ReadSplit(YamlMappingNode? node, string what, YamlSource source, string directory)
    {
        if (node is null)
        {
            return null;
        }

        source.CheckKeys(node, what, "inputs", "labels");
        var inputs = source.ExistingFile(node, "inputs", what, directory, required: true);
        var labels = source.ExistingFile(node, "labels", what, directory, required: true);
        return inputs is null ? null : new DataSplit(inputs, labels);
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
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"student architecture '{architecture}' is not built in. Built in: {string.Join(", ", ArchitectureRegistry.Names)}.", YamlSource.Get(node, "architecture"));
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

    private static List<StageSpec> ReadStages(YamlNode? node, YamlSource source, YamlMappingNode root)
    {
        var stages = new List<StageSpec>();
        if (node is null)
        {
            source.Error(DiagnosticCodes.RecipeMissingKey, "The recipe needs 'stages' (e.g. - distill: { epochs: 10 }).", root);
            return stages;
        }

        if (node is not YamlSequenceNode sequence)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "'stages' must be a list (lines starting with '- ').", node);
            return stages;
        }

        foreach (var item in sequence)
        {
            // A stage is "- kind" or "- kind: { options }".
            var (kindNode, optionsNode) = item switch
            {
                YamlScalarNode scalar => (scalar, (YamlNode?)null),
                YamlMappingNode { Children.Count: 1 } mapping => (mapping.Children.First().Key as YamlScalarNode, mapping.Children.First().Value),
                _ => (null, null),
            };
            if (kindNode?.Value is not { } kind)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, "A stage is written '- kind: { options }', e.g. '- distill: { epochs: 10 }'.", item);
                continue;
            }

            if (!StageOptionTypes.TryGetValue(kind, out var optionsType))
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Unknown stage '{kind}'. Stages: {string.Join(", ", StageOptionTypes.Keys)}.", kindNode);
                continue;
            }

            YamlMappingNode? optionsMapping = null;
            if (optionsNode is YamlMappingNode mappingNode)
            {
                optionsMapping = mappingNode;
            }
            else if (optionsNode is not null and not YamlScalarNode { Value: null or "" })
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"The options of stage '{kind}' must be a mapping.", optionsNode);
            }

            var options = OptionsBinder.Bind(optionsType, optionsMapping, $"stage '{kind}'", source);
            stages.Add(new StageSpec(kind, options, YamlSource.Line(item) ?? 0));
        }

        if (!stages.Any(s => s.Kind == "distill"))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "The stages need a 'distill' stage first: it trains the student.", node);
        }
        else if (stages[0].Kind != "distill")
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, "'distill' must be the first stage: later stages work on the trained student.", node);
        }

        return stages;
    }

    private static List<GateSpec> ReadGates(YamlNode? node, YamlSource source)
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
            if (item is not YamlScalarNode { Value: { } text })
            {
                source.Error(DiagnosticCodes.RecipeInvalidGate, "A gate is one expression, such as 'accuracy >= 0.85'.", item);
                continue;
            }

            if (GateExpression.TryParse(text, out var gate, out var error))
            {
                gates.Add(new GateSpec(gate!, text, YamlSource.Line(item) ?? 0, YamlSource.Column(item) ?? 0));
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
                    if (item is YamlScalarNode { Value: "json" or "md" } format)
                    {
                        reports.Add(format.Value!);
                    }
                    else
                    {
                        source.Error(DiagnosticCodes.RecipeInvalidValue, "Report formats: json, md.", item);
                    }
                }

                break;
            case var other:
                source.Error(DiagnosticCodes.RecipeInvalidValue, "outputs.report must be a list, e.g. [json, md].", other);
                break;
        }

        return new OutputSpec(model, reports);
    }
}
