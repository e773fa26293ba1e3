using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Common;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// Hugging Face tokenizer files (<c>tokenizer.json</c>, <c>tokenizer_config.json</c>) that ONNX Runtime GenAI's
/// tokenizer (onnxruntime-extensions) reads, for the tokenizer kinds that can be expressed with the same ids.
/// <para>
/// The byte kind (without a compact vocabulary) is a byte-level BPE without merges: GPT-2's byte-to-character table
/// gives each byte its vocabulary entry, with id = the byte's value, so every text encodes to its UTF-8 bytes; the end
/// of text and the extra special tokens are added tokens at their ids. Checked with GenAI 0.20.0: it encodes and
/// decodes as <see cref="GenerationTokenizer"/> does, except that GenAI matches a special token's spelling inside text
/// (a chat marker typed by a user becomes the marker's id), where the engine encodes it as text.
/// </para>
/// <para>
/// Not written for the other kinds: the character and compact vocabularies number ids in their own order with no Hugging
/// Face counterpart checked here; GPT-2, tiktoken and SentencePiece would need their data packages' vocabularies
/// converted, which is not done. Their folders work with GenAI through token ids only.
/// </para>
/// </summary>
public static class GenAiTokenizerFiles
{
    /// <summary>Hugging Face's tokenizer file.</summary>
    public const string TokenizerFile = "tokenizer.json";

    /// <summary>Hugging Face's tokenizer config file.</summary>
    public const string ConfigFile = "tokenizer_config.json";

    private static readonly JsonSerializerOptions Written = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Whether <paramref name="tokenizer"/> can be written for GenAI with the same ids.</summary>
    public static bool CanWrite(GenerationTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.Kind == GenerationTokenizerKind.Byte && tokenizer.CompactVocabulary is null;
    }

    /// <summary>Writes the two files into <paramref name="folder"/> when <see cref="CanWrite"/>; returns whether it did.</summary>
    public static bool TryWrite(GenerationTokenizer tokenizer, string folder, int contextLength)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!CanWrite(tokenizer))
        {
            return false;
        }

        var vocabulary = new JsonObject();
        var characters = ByteCharacters();
        for (var b = 0; b < 256; b++)
        {
            vocabulary[characters[b].ToString()] = b;
        }

        var added = new JsonArray();
        foreach (var (text, id) in tokenizer.SpecialTokens.OrderBy(s => s.Value))
        {
            added.Add(new JsonObject { ["id"] = id, ["content"] = text, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true });
        }

        var json = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["vocab"] = vocabulary,
                ["merges"] = new JsonArray(),
            },
        };
        var endOfText = tokenizer.SpecialTokens.First(s => s.Value == tokenizer.EndOfTextId).Key;
        var config = new JsonObject
        {
            ["tokenizer_class"] = "GPT2Tokenizer",
            ["bos_token"] = endOfText,
            ["eos_token"] = endOfText,
            ["unk_token"] = endOfText,
            ["pad_token"] = tokenizer.SpecialTokens.First(s => s.Value == tokenizer.PadId).Key,
            // The engine starts no text with a BOS; neither may GenAI.
            ["add_bos_token"] = false,
            ["model_max_length"] = contextLength,
        };
        AtomicFile.WriteAllText(Path.Join(folder, TokenizerFile), json.ToJsonString(Written) + "\n");
        AtomicFile.WriteAllText(Path.Join(folder, ConfigFile), config.ToJsonString(Written) + "\n");
        return true;
    }

    /// <summary>GPT-2's byte-to-character table: printable Latin-1 bytes stand for themselves, the rest for 256 and up in byte order.</summary>
    private static char[] ByteCharacters()
    {
        var characters = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            characters[b] = printable ? (char)b : (char)next++;
        }

        return characters;
    }
}
