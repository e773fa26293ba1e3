using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Common;

namespace ModelCompression.Text;

/// <summary>
/// The JSON description of a <see cref="GenerationTokenizer"/> saved next to a model:
/// <code>
/// { "format": "modelcompression-tokenizer", "version": 1, "kind": "byte" | "character" | "gpt2" | "tiktoken" | "sentencepiece",
///   "encoding": "cl100k_base",            // tiktoken only
///   "model": "spm.model",                 // sentencepiece only: the model file, copied next to the description
///   "characters": ["\n", " ", "a", …],    // character only: the vocabulary's characters in id order
///   "specials": { "&lt;|endoftext|&gt;": 256, "&lt;|user|&gt;": 257, … },   // every special token's id (after any compact map)
///   "end_of_text": 256, "pad": 256, "vocabulary_size": 261,
///   "compact": { "tokenizer_ids": [ … ] } }   // only with a compact vocabulary
/// </code>
/// Loading makes the tokenizer again from the kind and source, then checks that the ids, vocabulary size and specials it
/// gets are the ones written (a different data package version would fail here, not in the model's output).
/// </summary>
internal static class TokenizerFile
{
    private const string Format = "modelcompression-tokenizer";
    private const int Version = 1;

    // The markers (<|user|>) and characters stay readable: the file is read by people and by this loader, never put in HTML.
    private static readonly JsonSerializerOptions Written = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Save(GenerationTokenizer tokenizer, string path)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(path);
        var inner = tokenizer is CompactTokenizer compact ? compact.Inner : tokenizer;
        var json = new JsonObject
        {
            ["format"] = Format,
            ["version"] = Version,
            ["kind"] = inner.Kind.ToString().ToLowerInvariant(),
        };
        switch (inner)
        {
            case { Kind: GenerationTokenizerKind.Tiktoken }:
                json["encoding"] = inner.Source;
                break;
            case { Kind: GenerationTokenizerKind.SentencePiece }:
                var model = Path.GetFileName(inner.Source!);
                var target = Path.Join(Path.GetDirectoryName(Path.GetFullPath(path)), model);
                if (!string.Equals(Path.GetFullPath(inner.Source!), target, StringComparison.Ordinal))
                {
                    AtomicFile.Copy(inner.Source!, target);
                }

                json["model"] = model;
                break;
            case CharacterTokenizer characters:
                json["characters"] = new JsonArray([.. characters.Characters.Select(c => (JsonNode)c.ToString())]);
                break;
        }

        var specials = new JsonObject();
        foreach (var (text, id) in tokenizer.SpecialTokens.OrderBy(s => s.Value).ThenBy(s => s.Key, StringComparer.Ordinal))
        {
            specials[text] = id;
        }

        json["specials"] = specials;
        json["extra_specials"] = new JsonArray([.. tokenizer.ExtraSpecials.Select(s => (JsonNode)s)]);
        json["end_of_text"] = tokenizer.EndOfTextId;
        json["pad"] = tokenizer.PadId;
        json["vocabulary_size"] = tokenizer.VocabularySize;
        if (tokenizer.CompactVocabulary is { } vocabulary)
        {
            json["compact"] = new JsonObject { ["tokenizer_ids"] = new JsonArray([.. vocabulary.TokenizerIds.Select(i => (JsonNode)i)]) };
        }

        AtomicFile.WriteAllText(path, json.ToJsonString(Written) + "\n");
    }

    public static GenerationTokenizer Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new FormatException("the file is not a JSON object");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or FormatException)
        {
            throw GenerationTokenizer.Unavailable("saved", $"'{path}' cannot be read: {e.Message}", path);
        }

        try
        {
            return Read(json, path);
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or ArgumentException or KeyNotFoundException or JsonException)
        {
            throw GenerationTokenizer.Unavailable("saved", $"'{path}' is not a tokenizer description this engine wrote: {e.Message}", path);
        }
    }

    private static GenerationTokenizer Read(JsonObject json, string path)
    {
        if ((string?)json["format"] != Format || (int?)json["version"] != Version)
        {
            throw new FormatException($"expected format \"{Format}\" version {Version}");
        }

        var kindName = (string?)json["kind"] ?? throw new FormatException("no \"kind\"");
        if (!Enum.TryParse<GenerationTokenizerKind>(kindName, ignoreCase: true, out var kind) || kindName.Any(char.IsUpper))
        {
            throw new FormatException($"unknown kind \"{kindName}\"");
        }

        var extras = (json["extra_specials"] as JsonArray ?? throw new FormatException("no \"extra_specials\"")).Select(n => (string?)n ?? throw new FormatException("a null special token")).ToList();
        GenerationTokenizer tokenizer = kind switch
        {
            GenerationTokenizerKind.Byte => ByteTokenizer.Create(extras),
            GenerationTokenizerKind.Character => CharacterTokenizer.FromCharacters(Characters(json), extras),
            GenerationTokenizerKind.Tiktoken => LibraryTokenizer.Create(kind, (string?)json["encoding"] ?? throw new FormatException("no \"encoding\""), extras),
            GenerationTokenizerKind.SentencePiece => LibraryTokenizer.Create(kind, Path.Join(Path.GetDirectoryName(Path.GetFullPath(path)), (string?)json["model"] ?? throw new FormatException("no \"model\"")), extras),
            _ => LibraryTokenizer.Create(kind, null, extras),
        };
        if (json["compact"] is JsonObject compact)
        {
            var ids = (compact["tokenizer_ids"] as JsonArray ?? throw new FormatException("no \"compact.tokenizer_ids\"")).Select(n => (int?)n ?? throw new FormatException("a null compact id")).ToList();
            tokenizer = CompactTokenizer.FromIds(tokenizer, ids);
        }

        // The description says what the model was trained with: a tokenizer that now numbers differently is refused.
        var specials = json["specials"] as JsonObject ?? throw new FormatException("no \"specials\"");
        var written = specials.ToDictionary(p => p.Key, p => (int?)p.Value ?? throw new FormatException($"special \"{p.Key}\" has no id"), StringComparer.Ordinal);
        if (written.Count != tokenizer.SpecialTokens.Count || written.Any(p => !tokenizer.SpecialTokens.TryGetValue(p.Key, out var id) || id != p.Value)
            || (int?)json["vocabulary_size"] != tokenizer.VocabularySize || (int?)json["end_of_text"] != tokenizer.EndOfTextId || (int?)json["pad"] != tokenizer.PadId)
        {
            throw new FormatException($"the tokenizer made from it numbers its ids differently (vocabulary size {tokenizer.VocabularySize}, end of text {tokenizer.EndOfTextId}, pad {tokenizer.PadId}) than the description says");
        }

        return tokenizer;
    }

    private static List<Rune> Characters(JsonObject json)
    {
        var characters = json["characters"] as JsonArray ?? throw new FormatException("no \"characters\"");
        var runes = new List<Rune>(characters.Count);
        foreach (var node in characters)
        {
            var text = (string?)node ?? throw new FormatException("a null character");
            if (Rune.DecodeFromUtf16(text, out var rune, out var used) != System.Buffers.OperationStatus.Done || used != text.Length)
            {
                throw new FormatException($"\"{text}\" is not one character");
            }

            runes.Add(rune);
        }

        return runes;
    }
}
