using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Common;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Generation;

/// <summary>
/// The <c>genai_config.json</c> that makes a model folder loadable by ONNX Runtime GenAI (0.20.0), derived from the
/// decoder's graph. What GenAI needs, found with tests/fixtures/decoder (see its README): model type <c>llama</c>
/// (GenAI's decoder-only model with separate key and value caches; <c>gpt2</c> expects the older combined
/// <c>past_%d</c> cache), the convention's names as printf patterns (<c>past_key_values.%d.key</c> -&gt;
/// <c>present.%d.key</c>), and <c>past_present_share_buffer</c> false: the convention's present is a Concat of past
/// and new keys (past + new long), while a shared buffer needs an attention op that writes into a buffer of
/// max_length positions (GroupQueryAttention), which neither the built-in decoder nor a plain PyTorch export has.
/// The attention heads are the cache's heads: the convention's decoders have no grouped-query attention.
/// <para>
/// The search section holds the generation.json defaults GenAI can express: greedy (<c>do_sample</c> false) or
/// temperature, top-k and top-p sampling, and <c>max_length</c> the context length (GenAI counts the prompt in it, so
/// an app sets it to prompt + max new tokens per request). Stop texts and stop token sequences other than the end of
/// text have no place in GenAI's config: an app that needs them checks the tokens itself.
/// </para>
/// <para>
/// GenAI's tokenizer files are written by <see cref="GenAiTokenizerFiles"/> where the tokenizer kind allows (byte, GPT-2, tiktoken);
/// otherwise GenAI is used with token ids: an app encodes with <see cref="Text.GenerationTokenizer"/>, appends the ids
/// to GenAI's generator and decodes its ids the same way.
/// </para>
/// </summary>
public static class GenAiConfig
{
    /// <summary>The file name GenAI looks for in a model folder.</summary>
    public const string FileName = "genai_config.json";

    /// <summary>
    /// The config for the decoder <paramref name="model"/> (of signature <paramref name="signature"/>, with a cache)
    /// saved in the folder as <paramref name="modelFileName"/>, with the defaults of <paramref name="config"/>.
    /// </summary>
    public static JsonObject Create(ModelProto model, DecoderSignature signature, string modelFileName, GenerationConfig config)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(signature);
        ArgumentNullException.ThrowIfNull(modelFileName);
        ArgumentNullException.ThrowIfNull(config);
        if (!signature.HasCache || signature.Vocabulary is null)
        {
            throw new ArgumentException("GenAI needs a decoder with cache inputs and a fixed vocabulary.", nameof(signature));
        }

        var sampled = config.Temperature > 0 && config.TopK != 1;
        var inputs = new JsonObject
        {
            ["input_ids"] = DecoderConvention.InputIds,
            ["attention_mask"] = DecoderConvention.AttentionMask,
            ["past_key_names"] = Pattern(DecoderConvention.PastKey),
            ["past_value_names"] = Pattern(DecoderConvention.PastValue),
        };
        if (signature.HasPositionIds)
        {
            // GenAI feeds position ids only when the config names them.
            inputs["position_ids"] = DecoderConvention.PositionIds;
        }

        return new JsonObject
        {
            ["model"] = new JsonObject
            {
                // GenAI starts no sequence with a BOS of its own when it is given ids; the end of text stands in, as in
                // the fixture's config.
                ["bos_token_id"] = config.EndOfTextId,
                ["context_length"] = config.ContextLength,
                ["eos_token_id"] = EndIds(config),
                ["pad_token_id"] = config.PadId,
                ["type"] = "llama",
                ["vocab_size"] = signature.Vocabulary.Value,
                ["decoder"] = new JsonObject
                {
                    ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                    ["filename"] = modelFileName,
                    ["head_size"] = signature.HeadWidth,
                    ["hidden_size"] = HiddenSize(model, signature),
                    ["num_attention_heads"] = signature.KeyValueHeads,
                    ["num_hidden_layers"] = signature.CachedLayers,
                    ["num_key_value_heads"] = signature.KeyValueHeads,
                    ["inputs"] = inputs,
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = DecoderConvention.Logits,
                        ["present_key_names"] = Pattern(DecoderConvention.PresentKey),
                        ["present_value_names"] = Pattern(DecoderConvention.PresentValue),
                    },
                },
            },
            ["search"] = new JsonObject
            {
                ["do_sample"] = sampled,
                ["max_length"] = config.ContextLength,
                ["min_length"] = 0,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["past_present_share_buffer"] = false,
                ["repetition_penalty"] = 1.0,
                ["temperature"] = sampled ? config.Temperature : 1.0,
                // GenAI's top_k 0 is not "all": the whole vocabulary is.
                ["top_k"] = sampled ? (config.TopK > 0 ? config.TopK : signature.Vocabulary.Value) : 1,
                ["top_p"] = config.TopP,
            },
        };
    }

    /// <summary>Writes <see cref="Create"/>'s config to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, ModelProto model, DecoderSignature signature, string modelFileName, GenerationConfig config)
    {
        var json = Create(model, signature, modelFileName, config);
        AtomicFile.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>
    /// The ids that end a sequence for GenAI: the end of text, and each one-token stop of generation.json (a chat
    /// template's special end marker) as an array beside it, as GenAI's own configs list several (Phi-3's).
    /// </summary>
    private static JsonNode EndIds(GenerationConfig config)
    {
        var ids = config.StopTokenSequences.Where(s => s.Count == 1).Select(s => s[0]).Prepend(config.EndOfTextId).Distinct().ToList();
        return ids.Count == 1 ? JsonValue.Create(ids[0]) : new JsonArray([.. ids.Select(id => (JsonNode)id)]);
    }

    /// <summary>The width of the token vectors: the columns of the table <c>input_ids</c> gathers from, else heads times head width.</summary>
    private static int HiddenSize(ModelProto model, DecoderSignature signature)
    {
        var initializers = model.Graph.Initializer.ToDictionary(i => i.Name, StringComparer.Ordinal);
        var gather = model.Graph.Node.FirstOrDefault(n => n.OpType == "Gather" && n.Input.Count == 2 && n.Input[1] == DecoderConvention.InputIds && initializers.ContainsKey(n.Input[0]));
        return gather is not null && initializers[gather.Input[0]] is { Dims.Count: 2 } table && table.Dims[1] > 0
            ? checked((int)table.Dims[1])
            : signature.KeyValueHeads * signature.HeadWidth;
    }

    /// <summary>The name of layer 0 with the layer number as GenAI's <c>%d</c>.</summary>
    private static string Pattern(Func<int, string> name)
    {
        // Layer numbers are the only digits in the convention's names, so layer 0's single '0' marks the spot.
        var zero = name(0);
        var at = zero.IndexOf('0', StringComparison.Ordinal);
        return string.Concat(zero.AsSpan(0, at), "%d", zero.AsSpan(at + 1));
    }
}
