using System.Text.Json;

namespace ModelCompression.Teachers;

/// <summary>
/// The reply a chain-of-thought request asks for: a JSON object <c>{"reason": "…", "answer": "…"}</c> and nothing else
/// (<see cref="TeacherPrompts.ChainOfThoughtInstruction"/>). A Markdown code fence around it (```json … ```) is allowed,
/// as models add one unasked; other keys are ignored. An answer given as a JSON number is read as its literal text.
/// Anything else is not such a reply: no repair, no guessing.
/// </summary>
public static class ChainOfThought
{
    /// <summary>Reads <paramref name="reply"/>; false when it is not the JSON object asked for.</summary>
    public static bool TryParse(string reply, out string reason, out string answer)
    {
        ArgumentNullException.ThrowIfNull(reply);
        reason = answer = string.Empty;
        var text = StripFence(reply.Trim());
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("reason", out var reasonValue) || reasonValue.ValueKind != JsonValueKind.String
                || !root.TryGetProperty("answer", out var answerValue) || answerValue.ValueKind is not (JsonValueKind.String or JsonValueKind.Number))
            {
                return false;
            }

            reason = reasonValue.GetString()!;
            answer = answerValue.ValueKind == JsonValueKind.String ? answerValue.GetString()! : answerValue.GetRawText();
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string StripFence(string text)
    {
        const string Fence = "```";
        if (!text.StartsWith(Fence, StringComparison.Ordinal) || !text.EndsWith(Fence, StringComparison.Ordinal) || text.Length < 2 * Fence.Length)
        {
            return text;
        }

        // Drop the opening fence's line (it may name the language) and the closing fence.
        var firstLineEnd = text.IndexOf('\n', StringComparison.Ordinal);
        return firstLineEnd < 0 ? text : text[(firstLineEnd + 1)..^Fence.Length];
    }
}
