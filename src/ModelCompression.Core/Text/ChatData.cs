namespace ModelCompression.Text;

/// <summary>Who says a message.</summary>
public enum ChatRole
{
    /// <summary>Instructions before the conversation.</summary>
    System,

    /// <summary>The person (the prompt).</summary>
    User,

    /// <summary>The model (the answer it is trained to give).</summary>
    Assistant,
}

/// <summary>One message of a conversation.</summary>
/// <param name="Role">Who says it.</param>
/// <param name="Content">What is said.</param>
/// <param name="Trained">
/// Assistant messages only: whether training learns this answer (OpenAI's <c>"weight": 0</c> turns it off for an
/// earlier turn that is context only). Always true for the other roles, whose tokens are never trained.
/// </param>
public sealed record ChatMessage(ChatRole Role, string Content, bool Trained = true);

/// <summary>The layout of a chat data file.</summary>
public enum ChatFormat
{
    /// <summary>OpenAI's fine-tuning chat format: <c>{"messages": [{"role": …, "content": …}, …]}</c>.</summary>
    Messages,

    /// <summary><c>{"prompt": …, "completion": …}</c>: a user turn and the assistant's answer.</summary>
    PromptCompletion,
}

/// <summary>One conversation of a data file.</summary>
/// <param name="Messages">The messages in order: an optional system message, then user and assistant alternating from a user turn.</param>
/// <param name="File">The file it came from.</param>
/// <param name="Line">Its line (from 1).</param>
public sealed record ChatRecord(IReadOnlyList<ChatMessage> Messages, string File, int Line)
{
    /// <summary>Whether the conversation ends on an assistant turn (a record without one belongs to the unlabelled pool).</summary>
    public bool HasAnswer => Messages.Count > 0 && Messages[^1].Role == ChatRole.Assistant;

    /// <summary>The final answer, or null when there is none.</summary>
    public string? Answer => HasAnswer ? Messages[^1].Content : null;

    /// <summary>The messages a model answers: all of them for a pool record, all but the final answer otherwise.</summary>
    public IReadOnlyList<ChatMessage> Prompt => HasAnswer ? [.. Messages.Take(Messages.Count - 1)] : Messages;

    /// <summary>"file:line", as diagnostics and reports name a record.</summary>
    public string Location => $"{File}:{Line}";
}

/// <summary>What a chat data file holds.</summary>
/// <param name="Format">Its layout.</param>
/// <param name="Labelled">The conversations that end on an answer, in file order.</param>
/// <param name="Unlabelled">The prompts without an answer (the pool a teacher answers), in file order.</param>
public sealed record ChatData(ChatFormat Format, IReadOnlyList<ChatRecord> Labelled, IReadOnlyList<ChatRecord> Unlabelled);
