using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using YamlDotNet.RepresentationModel;

namespace ModelCompression.Recipes;

/// <summary>The recipe's top-level 'execution_provider' key.</summary>
internal static class ExecutionProviderKey
{
    /// <summary>The key as recipes write it.</summary>
    public const string Name = "execution_provider";

    /// <summary>'execution_provider: cpu|cuda'; cpu when absent or invalid (reported, MC1003).</summary>
    public static ExecutionProvider Read(YamlMappingNode root, YamlSource source)
    {
        var node = YamlSource.Get(root, Name);
        if (node is null)
        {
            return ExecutionProvider.Cpu;
        }

        if (node is YamlScalarNode { Value: var text } && ExecutionProviderNames.TryParse(text, out var provider))
        {
            return provider;
        }

        source.Error(
            DiagnosticCodes.RecipeInvalidValue,
            $"'{Name}' must be one of {string.Join(", ", ExecutionProviderNames.All)}, not '{(node as YamlScalarNode)?.Value ?? node.NodeType.ToString()}'.",
            node);
        return ExecutionProvider.Cpu;
    }
}
