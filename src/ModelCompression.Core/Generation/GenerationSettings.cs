using ModelCompression.Common;
using ModelCompression.Evaluation;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// The recipe's <c>generation:</c> section (task: generation): what kind of answers the model writes and how they are
/// scored, how text becomes tokens, how a conversation becomes text, and how long prompts and answers may be. Bound by
/// the recipe loader's options binder like stage options, so its keys, ranges and descriptions are written once here and feed
/// the loader's checks, the JSON Schema and <c>dotnet compress options</c>.
/// </summary>
public sealed record GenerationSettings
{
    /// <summary>The kind of task: decides the answer parser, the quality metrics and the default answer length.</summary>
    [Option("task_type", "math (exact match of the final number, GSM8K's '#### n' or answer_pattern), nli (accuracy over label_words), qa (SQuAD exact match and token F1), summarization (ROUGE-1/2/L) or conversation (perplexity and agreement with the teacher).")]
    public GenerativeTaskType TaskType { get; init; } = GenerativeTaskType.Conversation;

    /// <summary>Math: a regular expression with one capture group around the final number.</summary>
    [Option("answer_pattern", "math: a regular expression with one capture group around the final number (default: GSM8K's '#### n').")]
    public string? AnswerPattern { get; init; }

    /// <summary>NLI: the label words.</summary>
    [Option("label_words", "nli: the label words an answer must be one of (default: entailment, neutral, contradiction).")]
    public string[]? LabelWords { get; init; }

    /// <summary>The tokenizer kind.</summary>
    [Option("tokenizer", "byte (256 byte ids), character (one id per character of the training text), gpt2 (GPT-2's byte-level BPE), tiktoken (an encoding, in tokenizer_source) or sentencepiece (a .model file, in tokenizer_source).")]
    public GenerationTokenizerKind Tokenizer { get; init; } = GenerationTokenizerKind.Character;

    /// <summary>Tiktoken's encoding name or SentencePiece's model file.</summary>
    [Option("tokenizer_source", "tiktoken: the encoding (r50k_base, cl100k_base, o200k_base); sentencepiece: the .model file, relative to the recipe.")]
    public string? TokenizerSource { get; init; }

    /// <summary>Restrict the vocabulary to the ids the training text uses.</summary>
    [Option("compact_vocabulary", "Keep only the token ids the training conversations use (plus the special tokens), renumbered densely, so a small model's embedding table and output head stay small.")]
    public bool CompactVocabulary { get; init; }

    /// <summary>Tokens of prompt and answer together.</summary>
    [Option("max_length", "Tokens of a rendered conversation (prompt and answer): training drops answers that do not fit, generation keeps the prompt's end. Also the built-in decoder's position table.", Min = 8, Max = 65536)]
    public int MaxLength { get; init; } = 256;

    /// <summary>Tokens an answer may have when generated; 0 for the task's default.</summary>
    [Option("max_new_tokens", "Tokens an answer may have when the model or the teacher writes it (0: the task's default, 128, or 1024 for summarization).", Min = 0, Max = 65536)]
    public int MaxNewTokens { get; init; }

    /// <summary>Answers generated at once.</summary>
    [Option("batch_size", "Prompts answered at once (with the KV cache) when evaluating and when the teacher generates.", Min = 1, Max = 4096)]
    public int BatchSize { get; init; } = 8;

    /// <summary>Sample generations shown in the reports.</summary>
    [Option("samples", "Test prompts whose generations the reports show side by side (prompt, gold, teacher, student).", Min = 0, Max = 1000)]
    public int Samples { get; init; } = 5;

    /// <summary>The system message's template.</summary>
    [Option("system_template", "How a system message becomes text; {content} is the message.")]
    public string SystemTemplate { get; init; } = new ChatTemplateOptions().System;

    /// <summary>A user message's template.</summary>
    [Option("user_template", "How a user message becomes text; {content} is the message.")]
    public string UserTemplate { get; init; } = new ChatTemplateOptions().User;

    /// <summary>An assistant message's template.</summary>
    [Option("assistant_template", "How an assistant message becomes text; it must start with generation_prompt, then {content}.")]
    public string AssistantTemplate { get; init; } = new ChatTemplateOptions().Assistant;

    /// <summary>What a prompt for generation ends in.</summary>
    [Option("generation_prompt", "What a prompt ends in when the model is to answer: the start of an assistant message.")]
    public string GenerationPrompt { get; init; } = new ChatTemplateOptions().GenerationPrompt;

    /// <summary>The template's special tokens.</summary>
    [Option("markers", "The templates' special tokens: each becomes one token id, never text.")]
    public string[] Markers { get; init; } = [.. new ChatTemplateOptions().Markers];

    /// <summary>The generative task the settings describe.</summary>
    public GenerativeTask Task => new(TaskType, AnswerPattern, LabelWords);

    /// <summary>The chat template the settings describe.</summary>
    public ChatTemplateOptions Template => new()
    {
        System = SystemTemplate,
        User = UserTemplate,
        Assistant = AssistantTemplate,
        GenerationPrompt = GenerationPrompt,
        Markers = Markers,
    };

    /// <summary>The tokenizer the settings describe (<paramref name="recipeDirectory"/> resolves a SentencePiece file).</summary>
    public GenerationTokenizerOptions TokenizerOptions(string recipeDirectory) => new(
        Tokenizer,
        Tokenizer == GenerationTokenizerKind.SentencePiece && TokenizerSource is { } file ? Path.GetFullPath(Path.Combine(recipeDirectory, file)) : TokenizerSource,
        Markers,
        CompactVocabulary);

    /// <summary>The new tokens an answer may have: <see cref="MaxNewTokens"/>, or the task's default.</summary>
    public int AnswerTokens => MaxNewTokens > 0 ? MaxNewTokens : Task.DefaultMaxNewTokens;

    /// <summary>What is wrong with the settings, each with the key it is about (empty when nothing).</summary>
    public IEnumerable<(string Key, string Problem)> Problems()
    {
        foreach (var problem in Task.Problems())
        {
            yield return (problem.StartsWith("label_words", StringComparison.Ordinal) || problem.Contains("label word", StringComparison.Ordinal) ? "label_words" : "answer_pattern", problem);
        }

        foreach (var problem in Template.Problems())
        {
            yield return (problem.Contains("assistant", StringComparison.Ordinal) ? "assistant_template" : problem.StartsWith("Markers", StringComparison.Ordinal) ? "markers" : "system_template", problem);
        }

        var needsSource = Tokenizer is GenerationTokenizerKind.Tiktoken or GenerationTokenizerKind.SentencePiece;
        if (needsSource && string.IsNullOrEmpty(TokenizerSource))
        {
            yield return ("tokenizer_source", $"tokenizer {Tokenizer.ToString().ToLowerInvariant()} needs tokenizer_source ({(Tokenizer == GenerationTokenizerKind.Tiktoken ? "an encoding name" : "a .model file")}).");
        }
        else if (!needsSource && TokenizerSource is not null)
        {
            yield return ("tokenizer_source", $"tokenizer_source applies to tiktoken and sentencepiece only, not {Tokenizer.ToString().ToLowerInvariant()}.");
        }
    }
}
