namespace ModelCompression.Text;

/// <summary>
/// How a conversation becomes text: each role's message is its template with <see cref="Placeholder"/> replaced by the
/// content, the messages follow each other directly, and a prompt for generation ends in <see cref="GenerationPrompt"/>.
/// The default is ChatML-like:
/// <code>
/// &lt;|system|&gt;\nYou are terse.&lt;|end|&gt;\n&lt;|user|&gt;\nHi&lt;|end|&gt;\n&lt;|assistant|&gt;\nHello.&lt;|end|&gt;\n
/// </code>
/// <see cref="Markers"/> are the template's special tokens: a tokenizer made with them as extra specials encodes each
/// as one id (never as text), so the model cannot confuse a marker with content.
/// </summary>
public sealed record ChatTemplateOptions
{
    /// <summary>Where a template takes the message's content.</summary>
    public const string Placeholder = "{content}";

    /// <summary>The system message's template.</summary>
    public string System { get; init; } = "<|system|>\n{content}<|end|>\n";

    /// <summary>A user message's template.</summary>
    public string User { get; init; } = "<|user|>\n{content}<|end|>\n";

    /// <summary>An assistant message's template. It must start with <see cref="GenerationPrompt"/>, so that a prompt for generation is exactly what the model saw before each answer in training.</summary>
    public string Assistant { get; init; } = "<|assistant|>\n{content}<|end|>\n";

    /// <summary>What a prompt for generation ends in: the start of an assistant message.</summary>
    public string GenerationPrompt { get; init; } = "<|assistant|>\n";

    /// <summary>The special tokens the templates use (each becomes one id of a tokenizer made with them).</summary>
    public IReadOnlyList<string> Markers { get; init; } = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"];

    /// <summary>
    /// What is wrong with these options (empty when nothing): a template without exactly one placeholder, an assistant
    /// template that does not start with the generation prompt, an empty or repeated marker. The recipe reports each at
    /// its key.
    /// </summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        foreach (var (name, template) in new[] { ("system", System), ("user", User), ("assistant", Assistant) })
        {
            var count = (template.Length - template.Replace(Placeholder, "", StringComparison.Ordinal).Length) / Placeholder.Length;
            if (count != 1)
            {
                problems.Add($"The {name} template must hold {Placeholder} exactly once; it holds it {count} times.");
            }
        }

        if (GenerationPrompt.Length == 0 || !Assistant.StartsWith(GenerationPrompt, StringComparison.Ordinal) || Assistant.IndexOf(Placeholder, StringComparison.Ordinal) < GenerationPrompt.Length)
        {
            problems.Add($"The assistant template must start with the generation prompt ('{GenerationPrompt}') before {Placeholder}, so that generation sees what training saw.");
        }

        if (Markers.Any(string.IsNullOrEmpty) || Markers.Distinct(StringComparer.Ordinal).Count() != Markers.Count)
        {
            problems.Add("Markers must be distinct, non-empty texts.");
        }

        return problems;
    }
}
