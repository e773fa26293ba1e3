using System.Text.Json.Nodes;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Data;

/// <summary>
/// What a model trained on a data set must be told to be used later: the label names behind the class
/// numbers, the tokenizer and its compact vocabulary, and each tensor's normalisation. It is part of the
/// model's contract: <see cref="Write"/> saves it next to the model.
/// </summary>
public sealed record DataDescription
{
    /// <summary>Nothing to record (numeric labels, no tokenizer, no normalisation).</summary>
    public static DataDescription Empty { get; } = new();

    /// <summary>Class names by class number when labels were text (sorted, or as the recipe listed them); null otherwise.</summary>
    public IReadOnlyList<string>? LabelNames { get; init; }

    /// <summary>The tokenizer that made the token tensors; null for numeric data.</summary>
    public TokenizerDescription? Tokenizer { get; init; }

    /// <summary>Applied to each float tensor when read (scale, mean, std), by tensor name.</summary>
    public IReadOnlyDictionary<string, FeatureTransform> Transforms { get; init; } = new Dictionary<string, FeatureTransform>();

    /// <summary>The ids a token model's embedding table must cover (0 .. size - 1); null for numeric data.</summary>
    public int? VocabularySize => Tokenizer?.VocabularySize;

    /// <summary>The description with each tensor's name, type and sample shape, as JSON.</summary>
    public JsonObject ToJson(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var json = new JsonObject
        {
            ["tensors"] = new JsonArray([.. data.Tensors.Select(t => (JsonNode)new JsonObject
            {
                ["name"] = t.Name,
                ["dtype"] = t.ElementType == DataElementType.Float32 ? "float32" : "int64",
                ["shape"] = new JsonArray([.. t.SampleShape.Select(d => (JsonNode)d)]),
            })]),
        };
        if (LabelNames is not null)
        {
            json["label_names"] = new JsonArray([.. LabelNames.Select(n => (JsonNode)n)]);
        }

        if (Transforms.Count > 0)
        {
            var transforms = new JsonObject();
            foreach (var (name, transform) in Transforms.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                transforms[name] = new JsonObject
                {
                    ["scale"] = transform.Scale,
                    ["mean"] = transform.Mean is null ? null : new JsonArray([.. transform.Mean.Select(v => (JsonNode)v)]),
                    ["std"] = transform.Std is null ? null : new JsonArray([.. transform.Std.Select(v => (JsonNode)v)]),
                };
            }

            json["normalization"] = transforms;
        }

        if (Tokenizer is { } tokenizer)
        {
            json["tokenizer"] = new JsonObject
            {
                ["kind"] = tokenizer.Kind,
                ["source"] = tokenizer.Source,
                ["max_length"] = tokenizer.MaxLength,
                ["pad_id"] = tokenizer.PadId,
                ["vocabulary_size"] = tokenizer.VocabularySize,
                ["compact_vocabulary"] = tokenizer.CompactVocabulary is null ? null : new JsonObject
                {
                    ["pad_id"] = CompactVocabulary.PadId,
                    ["unknown_id"] = CompactVocabulary.UnknownId,
                    // Entry i is the tokenizer's id that compact id i + 2 stands for.
                    ["tokenizer_ids"] = new JsonArray([.. tokenizer.CompactVocabulary.TokenizerIds.Select(v => (JsonNode)v)]),
                },
            };
        }

        return json;
    }

    /// <summary>Writes the description of <paramref name="data"/> as JSON to <paramref name="path"/> (atomically).</summary>
    public void Write(string path, Dataset data) => AtomicFile.WriteAllText(path, ToJsonText(data));

    /// <summary>The text <see cref="Write"/> writes.</summary>
    internal string ToJsonText(Dataset data) => ToJson(data).ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}

/// <summary>How text became token tensors.</summary>
/// <param name="Kind">"wordpiece", "sentencepiece" or "tiktoken".</param>
/// <param name="Source">The vocabulary file's name or the encoding's name.</param>
/// <param name="MaxLength">Tokens per sample (truncated or padded to it).</param>
/// <param name="PadId">The id padding positions hold (in the compact vocabulary when there is one).</param>
/// <param name="VocabularySize">Ids run from 0 to this minus 1.</param>
/// <param name="CompactVocabulary">The remapping to a small vocabulary built from the training text, or null.</param>
public sealed record TokenizerDescription(string Kind, string Source, int MaxLength, int PadId, int VocabularySize, CompactVocabulary? CompactVocabulary);

/// <summary>Collects bad rows (file and line, or row) and reports them in one error: the first ~20 and a count of the rest.</summary>
internal sealed class BadRows
{
    private const int Shown = 20;
    private readonly List<(string File, int? Line, string Text)> _shown = [];

    public int Count { get; private set; }

    /// <summary>One bad row: "<paramref name="where"/>: <paramref name="problem"/>".</summary>
    public void Add(string file, int? line, string where, string problem)
    {
        Count++;
        if (_shown.Count < Shown)
        {
            _shown.Add((file, line, $"{where}: {problem}"));
        }
    }

    /// <summary>Throws one <paramref name="code"/> error naming the first bad row's file and line, when any.</summary>
    public void ThrowIfAny(string code, string summary)
    {
        if (Count == 0)
        {
            return;
        }

        var rest = Count - _shown.Count;
        var list = string.Join("; ", _shown.Select(s => s.Text));
        var message = $"{summary}: {Count} bad row{(Count == 1 ? "" : "s")}. {list}{(rest > 0 ? $"; and {rest} more" : "")}. Nothing is dropped silently: fix or remove these rows.";
        throw CompressionException.Error(code, message, _shown[0].File, _shown[0].Line);
    }
}
