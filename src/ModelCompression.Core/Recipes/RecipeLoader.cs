using ModelCompression.Architectures;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Gates;
using ModelCompression.Stages;
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
}
