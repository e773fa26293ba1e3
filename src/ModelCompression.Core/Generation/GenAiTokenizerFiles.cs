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
/// gives each byte its vocabulary entry, with id = the byte's value, so every text encodes to its UTF-8 bytes. GPT-2
/// and the tiktoken encodings (r50k_base, the same as GPT-2; cl100k_base; o200k_base) are the byte-level BPEs they are:
/// each token's bytes through that table, at its id, and the merges rebuilt from the data package's ranks (a token's
/// merge is the last step of BPE over its own bytes with the ranks below its own, as tiktoken's ranks imply);
/// cl100k_base and o200k_base split words with their own pattern before the bytes are mapped. The end of text and the
/// extra special tokens are added tokens at their ids. Checked with GenAI 0.20.0: it encodes and decodes as
/// <see cref="GenerationTokenizer"/> does, except that GenAI matches a special token's spelling inside text (a chat
/// marker typed by a user becomes the marker's id), where the engine encodes it as text.
/// </para>
/// <para>
/// Not written for the other kinds. Character vocabularies number ids in their own order with no Hugging Face
/// counterpart. A compact vocabulary keeps the tokens its text used, not the intermediate tokens BPE merges through on
/// the way to them, and maps a token it lacks to one unknown id, which no BPE file can say. SentencePiece would need its
/// model converted. Those folders work with GenAI through token ids only.
/// </para>
/// </summary>
public static class GenAiTokenizerFiles
{
    /// <summary>Hugging Face's tokenizer file.</summary>
    public const string TokenizerFile = "tokenizer.json";

    /// <summary>Hugging Face's tokenizer config file.</summary>
    public const string ConfigFile = "tokenizer_config.json";

    /// <summary>
    /// cl100k_base's split pattern as tiktoken publishes it (and Llama 3 reuses it). Microsoft.ML.Tokenizers writes the
    /// same split with atomic groups, which GenAI's regular expressions refuse.
    /// </summary>
    private const string Cl100kPattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static readonly JsonSerializerOptions Written = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Whether <paramref name="tokenizer"/> can be written for GenAI with the same ids.</summary>
    public static bool CanWrite(GenerationTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.Kind == GenerationTokenizerKind.Byte && tokenizer.CompactVocabulary is null
            || tokenizer is LibraryTokenizer { Kind: GenerationTokenizerKind.Gpt2 or GenerationTokenizerKind.Tiktoken };
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
        var merges = new JsonArray();
        var characters = ByteCharacters();
        if (tokenizer is LibraryTokenizer library && library.RankedTokens() is { } ranks)
        {
            foreach (var (id, bytes) in ranks.OrderBy(r => r.Key))
            {
                vocabulary[Spell(bytes, characters)] = id;
            }

            foreach (var (left, right) in Merges(ranks))
            {
                merges.Add($"{Spell(left, characters)} {Spell(right, characters)}");
            }
        }
        else
        {
            for (var b = 0; b < 256; b++)
            {
                vocabulary[characters[b].ToString()] = b;
            }
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
            ["pre_tokenizer"] = PreTokenizer(tokenizer),
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
                ["merges"] = merges,
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

    /// <summary>
    /// How text is split into words before BPE: GPT-2's pattern (byte, gpt2, r50k_base) is ByteLevel's own; cl100k_base
    /// and o200k_base split with their own pattern first, then map bytes to characters without splitting again.
    /// </summary>
    private static JsonObject PreTokenizer(GenerationTokenizer tokenizer)
    {
        var pattern = tokenizer is LibraryTokenizer { Source: "cl100k_base" } ? Cl100kPattern
            : tokenizer is LibraryTokenizer { Kind: GenerationTokenizerKind.Tiktoken, Source: not "r50k_base" } library ? library.WordPattern : null;
        if (pattern is null)
        {
            return new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        }

        return new JsonObject
        {
            ["type"] = "Sequence",
            ["pretokenizers"] = new JsonArray(
                new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = false }),
        };
    }

    /// <summary>
    /// The merges of a tiktoken-format BPE in priority order: for each multi-byte token, by rank, BPE over its bytes
    /// with only the ranks below its own leaves two parts, and joining those two is the merge that makes it.
    /// </summary>
    internal static IReadOnlyList<(byte[] Left, byte[] Right)> Merges(IReadOnlyDictionary<int, byte[]> ranks)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        // Latin-1 maps each byte to one char and back, so a byte string can key a dictionary.
        var rankOf = ranks.ToDictionary(r => System.Text.Encoding.Latin1.GetString(r.Value), r => r.Key, StringComparer.Ordinal);
        var merges = new List<(byte[], byte[])>();
        foreach (var (rank, bytes) in ranks.Where(r => r.Value.Length > 1).OrderBy(r => r.Key))
        {
            var parts = System.Text.Encoding.Latin1.GetString(bytes).Select(c => c.ToString()).ToList();
            while (parts.Count > 2)
            {
                var (best, bestRank) = (-1, rank);
                for (var i = 0; i + 1 < parts.Count; i++)
                {
                    if (rankOf.TryGetValue(parts[i] + parts[i + 1], out var pair) && pair < bestRank)
                    {
                        (best, bestRank) = (i, pair);
                    }
                }

                if (best < 0)
                {
                    break;
                }

                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }

            if (parts.Count == 2)
            {
                merges.Add((System.Text.Encoding.Latin1.GetBytes(parts[0]), System.Text.Encoding.Latin1.GetBytes(parts[1])));
            }
        }

        return merges;
    }

    /// <summary>A token's bytes as byte-level BPE writes them: each byte through <paramref name="characters"/>.</summary>
    private static string Spell(ReadOnlySpan<byte> bytes, char[] characters)
    {
        var text = new char[bytes.Length];
        for (var i = 0; i < bytes.Length; i++)
        {
            text[i] = characters[bytes[i]];
        }

        return new string(text);
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
