using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Stages;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>
/// Reads and validates a recipe file. Every problem is collected with its line and column and reported
/// together (MC1xxx) before any work starts.
/// </summary>
public static partial class RecipeLoader
{
    /// <summary>The stage kinds a recipe may name, with their options types.</summary>
    public static IReadOnlyDictionary<string, Type> StageOptionTypes { get; } = new Dictionary<string, Type>(StringComparer.Ordinal)
    {
        ["finetune"] = typeof(FinetuneOptions),
        ["distill"] = typeof(DistillOptions),
        ["sweep"] = typeof(SweepOptions),
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

    private static StudentSpec? ReadStudent(YamlMappingNode? node, YamlSource source, string directory)
    {
        if (node is null)
        {
            return null;
        }

        var line = YamlSource.Line(node) ?? 0;
        if (YamlSource.Get(node, RecipeKeys.StudentEntry.Model) is not null)
        {
            source.CheckKeys(node, "student", RecipeKeys.StudentEntry.Model.Name);
            var modelPath = source.ExistingFile(node, RecipeKeys.StudentEntry.Model.Name, "student", directory, required: true);
            return modelPath is null ? null : new StudentSpec(null, null, modelPath, line);
        }

        var architecture = source.String(node, RecipeKeys.StudentEntry.Architecture.Name, "student", required: false);
        if (architecture is null)
        {
            source.Error(DiagnosticCodes.RecipeMissingKey, $"student needs 'architecture' (built in: {string.Join(", ", ArchitectureRegistry.Names)}) or 'model' (an ONNX file).", node);
            return null;
        }

        if (!ArchitectureRegistry.TryGet(architecture, out var info))
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"student architecture '{architecture}' is not built in{Suggestions.Hint(architecture, [.. ArchitectureRegistry.Names], "Built in")}", YamlSource.Get(node, RecipeKeys.StudentEntry.Architecture));
            return null;
        }

        // Every other key is an option of the architecture.
        var optionsNode = new YamlMappingNode();
        foreach (var (key, value) in node.Children)
        {
            if (key is not YamlScalarNode { Value: var name } || name != RecipeKeys.StudentEntry.Architecture.Name)
            {
                optionsNode.Add(key, value);
            }
        }

        var options = (IArchitectureOptions)OptionsBinder.Bind(info.OptionsType, optionsNode, $"student architecture '{architecture}'", source);
        return new StudentSpec(info.Name, options, null, line);
    }

    private static List<StageSpec> ReadStages(YamlNode? node, YamlSource source, YamlMappingNode root, bool studentIsBuiltIn, bool hasTeacher)
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

        // Whether the list's first item named a known stage: only then does "train first" apply, since a misspelled
        // first stage is (most likely) the training one, and a second error about it would mislead.
        var firstIsKnown = true;
        foreach (var item in sequence)
        {
            var isFirst = ReferenceEquals(item, sequence.Children[0]);
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
                firstIsKnown &= !isFirst;
                continue;
            }

            if (!StageOptionTypes.TryGetValue(kind, out var optionsType))
            {
                firstIsKnown &= !isFirst;
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Unknown stage '{kind}'{Suggestions.Hint(kind, [.. StageOptionTypes.Keys], "Stages")}", kindNode);
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
            foreach (var problem in (options as ICheckedOptions)?.Validate() ?? [])
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Stage '{kind}': {problem}.", item);
            }

            if (!hasTeacher && TeacherUse(options) is { } use)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Stage '{kind}' needs a teacher, and the recipe names none: {use}. Add 'teacher:' to the recipe.", item);
            }

            stages.Add(new StageSpec(kind, options, YamlSource.Line(item) ?? 0));
        }

        // A built-in student starts from random weights: anything but training it first would compress noise.
        if (studentIsBuiltIn && firstIsKnown && stages.Count > 0 && stages[0].Options is not TrainingStageOptions)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"A built-in student must be trained first: start the stages with 'distill' or 'finetune', not '{stages[0].Kind}'.", node);
        }

        return stages;
    }

    /// <summary>What of the teacher <paramref name="options"/> use, in words; null when the stage trains on labels alone.</summary>
    private static string? TeacherUse(object options) => options switch
    {
        SweepOptions => "a sweep's trials distil the teacher's soft targets",
        DistillOptions => "distillation learns the teacher's soft targets (finetune trains on the labels alone)",
        TrainingStageOptions { InitFromTeacher: true } => "init_from_teacher copies the teacher's weights",
        RecoveryOptions { ReadsTeacher: true } => "alpha above 0 mixes the teacher's soft targets into recovery training (alpha 0 recovers on the labels alone; recovery_teacher: dense learns from the unpruned model instead)",
        _ => null,
    };
}
