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
        Defaults = config.ToOptions(tokenizer);
        _template = config.ChatTemplate is { } template ? new ChatTemplate(template, tokenizer) : null;
    }

    /// <summary>The folder.</summary>
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
                throw new CompressionException([.. problems.Select(p => Diagnostic.Error(DiagnosticCodes.GenerativeFolderInvalid, $"Generative model folder '{root}': {p}.", configPath))]);
            }

            return new GenerativeModel(root, session, tokenizer, config);
        }
        catch
        {
            session.Dispose();
            throw;
        }
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

    /// <summary>
    /// Room for the prompt: the context less generation.json's answer length, so a long prompt still gets a whole answer
    /// (training cut conversations from the left the same way); never less than the generation prompt and one token.
    /// </summary>
    private int PromptLimit => Math.Max((_template?.GenerationPromptLength ?? 0) + 1, Config.ContextLength - Defaults.MaxNewTokens);

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
}
