using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// A generative model folder (<see cref="GenerativeModelFolder"/>) opened for an app: it answers prompts with the
/// engine's <see cref="Generator"/>, the folder's tokenizer and chat template, and decodes as generation.json says
/// unless the caller passes other options (start from <see cref="Defaults"/> with <c>with { … }</c>). Answers may run
/// on several threads at once (ONNX Runtime sessions allow concurrent runs and the generator keeps no state).
/// </summary>
public sealed class GenerativeModel : IDisposable
{
    private readonly DecoderSession _session;
    private readonly Generator _generator;
    private readonly ChatTemplate? _template;

    private GenerativeModel(string folder, DecoderSession session, GenerationTokenizer tokenizer, GenerationConfig config)
    {
        Folder = folder;
        _session = session;
        _generator = new Generator(session);
        Tokenizer = tokenizer;
        Config = config;
        _template = config.ChatTemplate is { } template ? new ChatTemplate(template, tokenizer) : null;
        // A chat model's answer ends at its template's end marker even when generation.json does not list it (folders
        // written before it did): past the marker the model writes the next turn, not the answer.
        Defaults = _template is null ? config.ToOptions(tokenizer) : GenerationEvaluator.StopAtEndMarker(_template, config.ToOptions(tokenizer));
    }

    /// <summary>The folder (for <see cref="OpenDecoder"/>, the folder of the model file).</summary>
    public string Folder { get; }

    /// <summary>The tokenizer (tokenizer.compress.json).</summary>
    public GenerationTokenizer Tokenizer { get; }

    /// <summary>The folder's generation.json.</summary>
    public GenerationConfig Config { get; }

    /// <summary>The decoding options generation.json says: what <see cref="Answer(string, GenerationOptions?, CancellationToken)"/> uses without options.</summary>
    public GenerationOptions Defaults { get; }

    /// <summary>Whether prompts go through a chat template (else the model continues plain text).</summary>
    public bool IsChat => _template is not null;

    /// <summary>
    /// Most tokens of a prompt (longer ones lose tokens from the left): the context less generation.json's answer length,
    /// so a long prompt still gets a whole answer (training cut conversations from the left the same way); never less
    /// than the generation prompt and one token.
    /// </summary>
    public int PromptLimit => Math.Max((_template?.GenerationPromptLength ?? 0) + 1, Config.ContextLength - Defaults.MaxNewTokens);

    /// <summary>
    /// Opens <paramref name="folder"/>. A missing file is MC2064; the tokenizer MC2024, generation.json MC2063, the
    /// model MC2001-MC2005 and MC2080 as their readers say; a tokenizer or generation.json that does not fit the model
    /// (vocabulary size, end-of-text id) is MC2064. <paramref name="threads"/> 0 uses the engine's thread budget.
    /// </summary>
    public static GenerativeModel Open(string folder, int threads = 0, ExecutionProvider provider = ExecutionProvider.Cpu)
    {
        ArgumentNullException.ThrowIfNull(folder);
        var root = Path.GetFullPath(folder);
        var files = new[] { GenerativeModelFolder.ModelFile, GenerationTokenizer.DefaultFileName, GenerationConfig.FileName };
        if (files.Where(f => !File.Exists(Path.Join(root, f))).ToList() is { Count: > 0 } missing)
        {
            throw new CompressionException([.. missing.Select(f => Diagnostic.Error(DiagnosticCodes.GenerativeFolderInvalid, $"Generative model folder '{root}' has no {f}.", Path.Join(root, f)))]);
        }

        var tokenizer = GenerationTokenizer.Load(Path.Join(root, GenerationTokenizer.DefaultFileName));
        var configPath = Path.Join(root, GenerationConfig.FileName);
        var config = GenerationConfig.Load(configPath);
        var modelPath = Path.Join(root, GenerativeModelFolder.ModelFile);
        var session = DecoderSession.Open(modelPath, threads, provider);
        return Checked(root, $"Generative model folder '{root}'", configPath, session, tokenizer, config);
    }

    /// <summary>
    /// Opens a bare decoder file <paramref name="modelPath"/> with <paramref name="tokenizer"/>, for plain text
    /// continuation: no chat template, greedy decoding ending at the tokenizer's end of text of up to half the context
    /// (at most 128 new tokens; a longer prompt loses tokens from the left), and the model's position table as the context. A decoder without a position table (rotary) has no context length
    /// to read: write a folder for it (<see cref="GenerativeModelFolder"/>). Problems are MC2064 with the model
    /// file; the model's own checks as in <see cref="Open"/>.
    /// </summary>
    public static GenerativeModel OpenDecoder(string modelPath, GenerationTokenizer tokenizer, int threads = 0, ExecutionProvider provider = ExecutionProvider.Cpu)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var path = Path.GetFullPath(modelPath);
        var session = DecoderSession.Open(path, threads, provider);
        if (session.Signature.MaxPositions is not { } positions)
        {
            session.Dispose();
            throw CompressionException.Error(DiagnosticCodes.GenerativeFolderInvalid, $"Decoder '{path}': its context length cannot be read from the graph (no learned position table); write a generative model folder with the context length and open that.", path);
        }

        var config = new GenerationConfig { EndOfTextId = tokenizer.EndOfTextId, PadId = tokenizer.PadId, ContextLength = positions, MaxNewTokens = Math.Clamp(positions / 2, 1, 128) };
        return Checked(Path.GetDirectoryName(path)!, $"Decoder '{path}'", path, session, tokenizer, config);
    }

    /// <summary>
    /// The token ids the model continues for plain <paramref name="text"/>, without the chat template even when the
    /// model has one (a completion rather than a conversation), cut from the left as <see cref="PromptIds(string)"/> cuts.
    /// </summary>
    public IReadOnlyList<int> TextIds(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return Cut(Tokenizer.Encode(text));
    }

    /// <summary>
    /// Generates for token-id prompts as <see cref="Generator.Generate"/> does (prompt 0's samples first), with
    /// <paramref name="options"/> (null: <see cref="Defaults"/>); stop texts without a decoder decode with the folder's
    /// tokenizer. <see cref="AnswerText"/> turns a sequence into the answer <see cref="Answer(string, GenerationOptions?, CancellationToken)"/> gives.
    /// </summary>
    public IReadOnlyList<GeneratedSequence> Generate(IReadOnlyList<IReadOnlyList<int>> promptIds, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        return _generator.Generate(promptIds, Effective(options), cancellationToken);
    }

    /// <summary>The answer's text of <paramref name="sequence"/>: its content tokens decoded, cut before the first of <paramref name="options"/>' stop texts it holds (null: the defaults').</summary>
    public string AnswerText(GeneratedSequence sequence, GenerationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        return Text(sequence, Effective(options));
    }

    /// <summary>
    /// The token ids the model continues for <paramref name="prompt"/>: with a chat template, one user message and the
    /// generation prompt; without, the text as it is. A prompt longer than the context allows loses tokens from the left.
    /// </summary>
    public IReadOnlyList<int> PromptIds(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return _template is null ? Cut(Tokenizer.Encode(prompt)) : PromptIds([new ChatMessage(ChatRole.User, prompt)]);
    }

    /// <summary>The token ids the model continues for the conversation <paramref name="messages"/> (a chat model only).</summary>
    public IReadOnlyList<int> PromptIds(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var template = _template ?? throw new InvalidOperationException($"The model in '{Folder}' has no chat template: it continues plain text; pass a string prompt.");
        return template.RenderForGeneration(messages, PromptLimit).Ids;
    }

    /// <summary>
    /// The answer to <paramref name="prompt"/> (see <see cref="PromptIds(string)"/>), decoded without its stop token or
    /// text. <paramref name="options"/> replace the folder's defaults; stop texts without a decoder decode with the
    /// folder's tokenizer.
    /// </summary>
    public string Answer(string prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Answer(PromptIds(prompt), options, cancellationToken);

    /// <summary>The assistant's answer to the conversation <paramref name="messages"/> (a chat model only).</summary>
    public string Answer(IReadOnlyList<ChatMessage> messages, GenerationOptions? options = null, CancellationToken cancellationToken = default) =>
        Answer(PromptIds(messages), options, cancellationToken);

    /// <summary>
    /// The answers to many prompts, generated in batches (<see cref="GenerationOptions.BatchSize"/>); with several
    /// samples per prompt, prompt 0's samples come first.
    /// </summary>
    public IReadOnlyList<string> AnswerAll(IReadOnlyList<string> prompts, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var effective = Effective(options);
        var sequences = _generator.Generate([.. prompts.Select(PromptIds)], effective, cancellationToken);
        return [.. sequences.Select(s => Text(s, effective))];
    }

    /// <inheritdoc />
    public void Dispose() => _session.Dispose();

    private string Answer(IReadOnlyList<int> promptIds, GenerationOptions? options, CancellationToken cancellationToken)
    {
        var effective = Effective(options);
        return Text(_generator.Generate([promptIds], effective, cancellationToken)[0], effective);
    }

    /// <summary>The caller's options (or the defaults), with the folder's tokenizer decoding for stop texts when they bring no decoder.</summary>
    private GenerationOptions Effective(GenerationOptions? options) =>
        options is null ? Defaults : options.StopStrings.Count > 0 && options.Decode is null ? options with { Decode = ids => Tokenizer.Decode(ids) } : options;

    private IReadOnlyList<int> Cut(IReadOnlyList<int> ids) => ids.Count > PromptLimit ? [.. ids.Skip(ids.Count - PromptLimit)] : ids;

    /// <summary>The answer's text: its content tokens decoded, cut before the first stop text it holds.</summary>
    private string Text(GeneratedSequence sequence, GenerationOptions options)
    {
        var text = Tokenizer.Decode(sequence.ContentTokens);
        var cut = options.StopStrings.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(text.Length).Min();
        return text[..cut];
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>The model over <paramref name="session"/> when the tokenizer and config fit it (else MC2064 naming <paramref name="what"/> at <paramref name="file"/>; the session is disposed).</summary>
    private static GenerativeModel Checked(string folder, string what, string file, DecoderSession session, GenerationTokenizer tokenizer, GenerationConfig config)
    {
        try
        {
            var problems = new List<string>();
            if (session.Signature.Vocabulary is { } vocabulary && vocabulary != tokenizer.VocabularySize)
            {
                problems.Add(Invariant($"the model's logits cover {vocabulary} token ids; the tokenizer has {tokenizer.VocabularySize}"));
            }

            if (config.EndOfTextId != tokenizer.EndOfTextId || config.PadId >= tokenizer.VocabularySize)
            {
                problems.Add(Invariant($"{GenerationConfig.FileName} says end of text {config.EndOfTextId} and pad {config.PadId}; the tokenizer's end of text is {tokenizer.EndOfTextId} in a vocabulary of {tokenizer.VocabularySize}"));
            }

            if (config.ChatTemplate is { } template && template.Markers.FirstOrDefault(m => !tokenizer.TryGetSpecialId(m, out _)) is { } marker)
            {
                problems.Add($"the chat template's marker '{marker}' is not a special token of the tokenizer");
            }

            if (problems.Count > 0)
            {
                throw new CompressionException([.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.GenerativeFolderInvalid, $"{what}: {p}.", file))]);
            }

            return new GenerativeModel(folder, session, tokenizer, config);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }
}
