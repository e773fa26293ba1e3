using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// Writes a generative student as a deployable folder:
/// <list type="bullet">
/// <item><c>model.onnx</c>: the decoder in the <see cref="DecoderConvention"/>, with its cache inputs (plus
/// <c>model.onnx.data</c> when its weights are stored outside the protobuf).</item>
/// <item><c>tokenizer.compress.json</c> (<see cref="GenerationTokenizer.Save"/>; a SentencePiece kind's .model file
/// beside it).</item>
/// <item><c>generation.json</c>: the decoding defaults and chat template (<see cref="GenerationConfig"/>).</item>
/// <item><c>genai_config.json</c>: what ONNX Runtime GenAI needs to load the folder (<see cref="GenAiConfig"/>).</item>
/// <item><c>tokenizer.json</c> and <c>tokenizer_config.json</c> for GenAI's tokenizer, for the byte, GPT-2 and tiktoken tokenizers
/// (<see cref="GenAiTokenizerFiles"/>); with the other kinds GenAI is driven with token ids.</item>
/// </list>
/// An app opens it with <see cref="GenerativeModel.Open"/>.
/// </summary>
public static class GenerativeModelFolder
{
    /// <summary>The decoder's file name in the folder.</summary>
    public const string ModelFile = "model.onnx";

    /// <summary>
    /// Writes the folder <paramref name="folder"/> from the decoder at <paramref name="modelPath"/>, its
    /// <paramref name="tokenizer"/>, its <paramref name="chatTemplate"/> (null: the model continues plain text) and the
    /// decoding <paramref name="options"/> it was evaluated with. <paramref name="contextLength"/> is the longest
    /// sequence the model takes; null reads it from the model's position table (a rotary model has none to read: pass
    /// it).
    /// <para>
    /// The folder appears whole or not at all: everything is written into a temporary folder beside it, which then
    /// replaces the old folder by two renames (old aside, new in place) before the old one is deleted. A failure
    /// before the renames leaves the old folder untouched; between them, the old folder is renamed back. (A process killed
    /// between the two renames leaves the old folder whole beside it as <c>.NAME.*.old</c>; a kill before them leaves a
    /// <c>.NAME.*.tmp</c> folder: neither is ever the folder an app opens.)
    /// </para>
    /// <para>
    /// A model that is not a decoder of the convention is MC2080 (and the file checks' MC2001-MC2005); a decoder without
    /// cache inputs, a vocabulary other than the tokenizer's, or no known context length is MC2064 (all at once);
    /// options with problems are an <see cref="ArgumentException"/>.
    /// </para>
    /// </summary>
    public static void Write(string folder, string modelPath, GenerationTokenizer tokenizer, ChatTemplateOptions? chatTemplate, GenerationOptions options, int? contextLength = null) =>
        Write(folder, modelPath, tokenizer, chatTemplate, options, contextLength, beforeCommit: null);

    /// <summary><see cref="Write(string, string, GenerationTokenizer, ChatTemplateOptions?, GenerationOptions, int?)"/>, calling <paramref name="beforeCommit"/> with the finished temporary folder (tests make it fail).</summary>
    internal static void Write(string folder, string modelPath, GenerationTokenizer tokenizer, ChatTemplateOptions? chatTemplate, GenerationOptions options, int? contextLength, Action<string>? beforeCommit)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Problems() is { Count: > 0 } optionProblems)
        {
            throw new ArgumentException("Generation options: " + string.Join("; ", optionProblems) + ".", nameof(options));
        }

        if (chatTemplate?.Problems() is { Count: > 0 } templateProblems)
        {
            throw new ArgumentException(string.Join(" ", templateProblems), nameof(chatTemplate));
        }

        var model = OnnxModelFile.LoadChecked(modelPath);
        var signature = DecoderSignature.Read(model, modelPath);
        var context = contextLength ?? signature.MaxPositions;
        var problems = new List<string>();
        if (!signature.HasCache)
        {
            problems.Add("it has no cache inputs (past_key_values.{i}.key/value); write the export with the cache, which generation with the cache and GenAI need");
        }

        if (signature.Vocabulary is not { } vocabulary)
        {
            problems.Add("its logits do not fix the vocabulary size");
        }
        else if (vocabulary != tokenizer.VocabularySize)
        {
            problems.Add(Invariant($"its logits cover {vocabulary} token ids; the tokenizer has {tokenizer.VocabularySize}"));
        }

        if (context is not { } length)
        {
            problems.Add("its context length cannot be read from the graph (no learned position table); pass it");
        }
        else if (length < 2 || (signature.MaxPositions is { } positions && length > positions))
        {
            problems.Add(Invariant($"context length {length} is not in [2, {signature.MaxPositions ?? int.MaxValue}] (the model's position table)"));
        }

        if (tokenizer.EndOfTextId >= tokenizer.VocabularySize || (options.PadTokenId ?? tokenizer.PadId) >= tokenizer.VocabularySize)
        {
            problems.Add("the end-of-text or pad id is outside the vocabulary");
        }

        if (problems.Count > 0)
        {
            throw new CompressionException([.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.GenerativeFolderInvalid, $"Cannot write a generative model folder from '{modelPath}': {p}.", modelPath))]);
        }

        // The template's end marker is written as a stop, so every reader of generation.json (and GenAI) ends answers there.
        var stopping = chatTemplate is null ? options : GenerationEvaluator.StopAtEndMarker(new ChatTemplate(chatTemplate, tokenizer), options);
        var config = GenerationConfig.From(stopping, tokenizer, chatTemplate, context!.Value);
        var final = Path.GetFullPath(folder);
        if (File.Exists(final))
        {
            throw CompressionException.Error(DiagnosticCodes.GenerativeFolderInvalid, $"Cannot write a generative model folder at '{final}': a file of that name is there.", final);
        }

        var parent = Path.GetDirectoryName(final)!;
        var name = Path.GetFileName(final);
        Directory.CreateDirectory(parent);
        var temporary = Path.Join(parent, $".{name}.{Guid.NewGuid():N}.tmp");
        var old = Path.Join(parent, $".{name}.{Guid.NewGuid():N}.old");
        Directory.CreateDirectory(temporary);
        try
        {
            OnnxModelFile.Save(model, Path.Join(temporary, ModelFile));
            tokenizer.Save(Path.Join(temporary, GenerationTokenizer.DefaultFileName));
            config.Save(Path.Join(temporary, GenerationConfig.FileName));
            GenAiConfig.Save(Path.Join(temporary, GenAiConfig.FileName), model, signature, ModelFile, config);
            GenAiTokenizerFiles.TryWrite(tokenizer, temporary, config.ContextLength);
            beforeCommit?.Invoke(temporary);
            Commit(temporary, final, old);
        }
        finally
        {
            if (Directory.Exists(temporary))
            {
                Directory.Delete(temporary, recursive: true);
            }
        }

        if (Directory.Exists(old))
        {
            Directory.Delete(old, recursive: true);
        }
    }

    /// <summary>Puts <paramref name="temporary"/> in place of <paramref name="final"/>, the old folder set aside at <paramref name="old"/>.</summary>
    private static void Commit(string temporary, string final, string old)
    {
        // A rename cannot replace a folder that has files, so the old one steps aside first and comes back on failure.
        var replaced = Directory.Exists(final);
        if (replaced)
        {
            Directory.Move(final, old);
        }

        try
        {
            Directory.Move(temporary, final);
        }
        catch when (replaced)
        {
            Directory.Move(old, final);
            throw;
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
