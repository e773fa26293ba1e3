using System.Text.Json;
using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Text;

/// <summary>
/// Reads chat data from JSON Lines, one conversation per line, in either layout of <see cref="ChatFormat"/> (one per
/// file: the first record decides). A prompt-completion record is the user turn <c>prompt</c> and the assistant turn
/// <c>completion</c>. A conversation that ends on a user turn, and a prompt without a completion (absent or null), has
/// no answer and goes to the unlabelled pool. Every bad record is reported together with file:line in one MC2022
/// error (as the other JSONL readers do): bad JSON, a line that is not an object, neither or both layouts, the other
/// layout than the file's, <c>messages</c> not an array or empty, a message not an object, a missing or unknown role,
/// content that is missing or not a string (content parts, tool calls), an empty user or assistant message, a
/// <c>weight</c> other than 0 or 1 or on a non-assistant message, a system message after the first, a conversation
/// that does not start with a user turn after the system message or has two turns of one role in a row, an empty or
/// non-string prompt, and a completion that is empty or not a string. Blank lines are skipped.
/// </summary>
public static class ChatReader
{
    /// <summary>Reads <paramref name="path"/>; MC2021 when it cannot be read or holds no record, MC2022 for bad records.</summary>
    public static ChatData Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var bad = new BadRows();
        var labelled = new List<ChatRecord>();
        var unlabelled = new List<ChatRecord>();
        (ChatFormat Format, int Line)? first = null;
        var number = 0;
        try
        {
            foreach (var line in File.ReadLines(path))
            {
                number++;
                if (line.Trim().Length == 0)
                {
                    continue;
                }

                var record = ReadLine(line, path, number, ref first, out var problem);
                if (record is null)
                {
                    bad.Add(path, number, $"{path}:{number}", problem!);
                    continue;
                }

                (record.HasAnswer ? labelled : unlabelled).Add(record);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, e.Message);
        }

        bad.ThrowIfAny(DiagnosticCodes.DataBadRows, $"Chat data '{path}' has bad records");
        if (first is null)
        {
            throw Unreadable(path, "it holds no conversations");
        }

        return new ChatData(first.Value.Format, labelled, unlabelled);
    }

    private static ChatRecord? ReadLine(string line, string path, int number, ref (ChatFormat Format, int Line)? first, out string? problem)
    {
        problem = null;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            problem = $"not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})";
            return null;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problem = $"a JSON {Name(root.ValueKind)}, not an object";
                return null;
            }

            var hasMessages = root.TryGetProperty("messages", out var messages);
            var hasPrompt = root.TryGetProperty("prompt", out var prompt);
            var hasCompletion = root.TryGetProperty("completion", out var completion);
            if (hasMessages && (hasPrompt || hasCompletion))
            {
                problem = "has both \"messages\" and \"prompt\"/\"completion\"; a record is one or the other";
                return null;
            }

            if (!hasMessages && !hasPrompt)
            {
                problem = hasCompletion ? "a \"completion\" without a \"prompt\"" : "neither \"messages\" (chat format) nor \"prompt\" (prompt-completion format)";
                return null;
            }

            var format = hasMessages ? ChatFormat.Messages : ChatFormat.PromptCompletion;
            first ??= (format, number);
            if (format != first.Value.Format)
            {
                problem = $"a {Describe(format)} record in a file of {Describe(first.Value.Format)} records (line {first.Value.Line}); one file holds one format";
                return null;
            }

            var list = hasMessages ? Messages(messages, out problem) : PromptCompletion(prompt, hasCompletion ? completion : default, out problem);
            return list is null ? null : new ChatRecord(list, path, number);
        }
    }

    private static List<ChatMessage>? Messages(JsonElement messages, out string? problem)
    {
        problem = null;
        if (messages.ValueKind != JsonValueKind.Array)
        {
            problem = $"\"messages\" is a {Name(messages.ValueKind)}, not an array";
            return null;
        }

        if (messages.GetArrayLength() == 0)
        {
            problem = "\"messages\" is empty: a conversation needs at least a user message";
            return null;
        }

        var list = new List<ChatMessage>();
        foreach (var element in messages.EnumerateArray())
        {
            var message = Message(element, list.Count + 1, out problem);
            if (message is null)
            {
                return null;
            }

            problem = OutOfOrder(list, message);
            if (problem is not null)
            {
                return null;
            }

            list.Add(message);
        }

        if (list.All(m => m.Role == ChatRole.System))
        {
            problem = "the conversation has no user message";
            return null;
        }

        return list;
    }

    private static ChatMessage? Message(JsonElement element, int index, out string? problem)
    {
        problem = null;
        var where = $"message {index}";
        if (element.ValueKind != JsonValueKind.Object)
        {
            problem = $"{where} is a {Name(element.ValueKind)}, not an object";
            return null;
        }

        if (!element.TryGetProperty("role", out var roleElement) || roleElement.ValueKind != JsonValueKind.String)
        {
            problem = roleElement.ValueKind == JsonValueKind.Undefined ? $"{where} has no \"role\"" : $"{where}'s \"role\" is a {Name(roleElement.ValueKind)}, not a string";
            return null;
        }

        ChatRole? role = roleElement.GetString() switch
        {
            "system" => ChatRole.System,
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            _ => null,
        };
        if (role is null)
        {
            problem = $"{where} has the unknown role \"{roleElement.GetString()}\" (system, user or assistant)";
            return null;
        }

        if (element.TryGetProperty("tool_calls", out _) || element.TryGetProperty("function_call", out _))
        {
            problem = $"{where} has tool or function calls, which generation data does not support";
            return null;
        }

        if (!element.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
        {
            problem = content.ValueKind == JsonValueKind.Undefined
                ? $"{where} has no \"content\""
                : $"{where}'s \"content\" is a{(content.ValueKind == JsonValueKind.Array ? "n" : "")} {Name(content.ValueKind)}, not a string{(content.ValueKind == JsonValueKind.Array ? " (content parts are not supported)" : "")}";
            return null;
        }

        var text = content.GetString()!;
        if (role != ChatRole.System && text.Trim().Length == 0)
        {
            problem = $"{where} ({Role(role.Value)}) is empty";
            return null;
        }

        var trained = true;
        if (element.TryGetProperty("weight", out var weight))
        {
            if (role != ChatRole.Assistant || weight.ValueKind != JsonValueKind.Number || !weight.TryGetInt32(out var w) || w is not (0 or 1))
            {
                problem = $"{where} has \"weight\": {weight.GetRawText()}; only assistant messages take a weight, 0 or 1";
                return null;
            }

            trained = w == 1;
        }

        return new ChatMessage(role.Value, text, trained);
    }

    /// <summary>Why <paramref name="message"/> cannot follow <paramref name="before"/>, or null.</summary>
    private static string? OutOfOrder(List<ChatMessage> before, ChatMessage message)
    {
        var index = before.Count + 1;
        if (message.Role == ChatRole.System)
        {
            return index == 1 ? null : $"message {index} is a system message; only the first message may be one";
        }

        var previous = before.Count == 0 ? ChatRole.System : before[^1].Role;
        var expected = previous == ChatRole.User ? ChatRole.Assistant : ChatRole.User;
        return message.Role == expected
            ? null
            : previous == ChatRole.System
                ? $"message {index} is an assistant message; the conversation starts with a user message"
                : $"message {index} is a second {Role(message.Role)} message in a row; user and assistant take turns";
    }

    private static List<ChatMessage>? PromptCompletion(JsonElement prompt, JsonElement completion, out string? problem)
    {
        problem = null;
        if (prompt.ValueKind != JsonValueKind.String || prompt.GetString()!.Trim().Length == 0)
        {
            problem = prompt.ValueKind == JsonValueKind.String ? "\"prompt\" is empty" : $"\"prompt\" is a {Name(prompt.ValueKind)}, not a string";
            return null;
        }

        var list = new List<ChatMessage> { new(ChatRole.User, prompt.GetString()!) };
        if (completion.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            return list;
        }

        if (completion.ValueKind != JsonValueKind.String || completion.GetString()!.Trim().Length == 0)
        {
            problem = completion.ValueKind == JsonValueKind.String
                ? "\"completion\" is empty (leave it out, or null, for a prompt without an answer)"
                : $"\"completion\" is a {Name(completion.ValueKind)}, not a string";
            return null;
        }

        list.Add(new ChatMessage(ChatRole.Assistant, completion.GetString()!));
        return list;
    }

    private static string Name(JsonValueKind kind) => kind switch
    {
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => kind.ToString().ToLowerInvariant(),
    };

    private static string Role(ChatRole role) => role.ToString().ToLowerInvariant();

    private static string Describe(ChatFormat format) => format == ChatFormat.Messages ? "chat (\"messages\")" : "prompt-completion";

    private static CompressionException Unreadable(string path, string why) =>
        CompressionException.Error(DiagnosticCodes.DataUnreadable, $"Cannot read chat data '{path}': {why}.", path);
}
