using System.Diagnostics.CodeAnalysis;

namespace ModelCompression.Stages;

/// <summary>
/// Every stage kind a recipe may name. The loader, the recipe's JSON schema, <c>dotnet compress options</c>, the plan
/// and the pipeline iterate this list; a new stage is a folder with its stage, options and descriptor, and one line here.
/// </summary>
public static class StageCatalog
{
    /// <summary>
    /// The stages, in the order the schema and <c>dotnet compress options</c> list them (changing it changes the committed
    /// docs/recipe.schema.json).
    /// </summary>
    public static IReadOnlyList<IStageDescriptor> All { get; } =
    [
        new FinetuneDescriptor(),
        new GenerateDescriptor(),
        new DistillDescriptor(),
        new SweepDescriptor(),
        new PruneDescriptor(),
        new FactorizeDescriptor(),
        new OptimizeDescriptor(),
        new QuantizeDescriptor(),
        new EvaluateDescriptor(),
    ];

    /// <summary>The stage kinds, in catalog order.</summary>
    public static IReadOnlyList<string> Kinds { get; } = [.. All.Select(d => d.Kind)];

    /// <summary>The descriptor of <paramref name="kind"/>, when the catalog has it.</summary>
    public static bool TryGet(string kind, [NotNullWhen(true)] out IStageDescriptor? descriptor)
    {
        descriptor = All.FirstOrDefault(d => d.Kind == kind);
        return descriptor is not null;
    }

    /// <summary>The descriptor of <paramref name="kind"/>; throws for a kind the catalog does not have (the loader accepts none).</summary>
    public static IStageDescriptor Get(string kind) =>
        TryGet(kind, out var descriptor) ? descriptor : throw new ArgumentException($"No stage '{kind}' in the catalog.", nameof(kind));
}
