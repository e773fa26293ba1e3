using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Stages;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>The stages list of a recipe, read through the stage catalog.</summary>
public static partial class RecipeLoader
{
    /// <summary>The stage kinds a recipe may name, with their options types, in catalog order.</summary>
    public static IReadOnlyDictionary<string, Type> StageOptionTypes { get; } =
        StageCatalog.All.ToDictionary(d => d.Kind, d => d.OptionsType, StringComparer.Ordinal);

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

            if (!StageCatalog.TryGet(kind, out var descriptor))
            {
                firstIsKnown &= !isFirst;
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Unknown stage '{kind}'{Suggestions.Hint(kind, [.. StageCatalog.Kinds], "Stages")}", kindNode);
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

            var options = OptionsBinder.Bind(descriptor.OptionsType, optionsMapping, $"stage '{kind}'", source);
            foreach (var problem in (options as ICheckedOptions)?.Validate() ?? [])
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Stage '{kind}': {problem}.", item);
            }

            if (!hasTeacher && descriptor.TeacherUse(options) is { } use)
            {
                source.Error(DiagnosticCodes.RecipeInvalidValue, $"Stage '{kind}' needs a teacher, and the recipe names none: {use}. Add 'teacher:' to the recipe.", item);
            }

            stages.Add(new StageSpec(kind, options, YamlSource.Line(item) ?? 0) { RecipePath = source.File, OptionLines = OptionsBinder.Lines(optionsMapping) });
        }

        // A built-in student starts from random weights: anything but training it first would compress noise.
        // Stages that pass the model through (generate) may come first: they change no weights.
        if (studentIsBuiltIn && firstIsKnown && stages.FirstOrDefault(s => !s.Descriptor.KeepsModel) is { Descriptor.Trains: false } first)
        {
            source.Error(DiagnosticCodes.RecipeInvalidValue, $"A built-in student must be trained first: start the stages with 'distill' or 'finetune', not '{first.Kind}'.", node);
        }

        return stages;
    }
}
