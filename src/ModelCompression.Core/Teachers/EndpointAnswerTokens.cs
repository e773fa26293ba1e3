using System.IO.Hashing;
using System.Text;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Teachers;

/// <summary>One answered turn's tokens as the endpoint gave them.</summary>
/// <param name="Message">The index of the message the turn's answer is in (the kept record's answer slot).</param>
/// <param name="Tokens">The reply's tokens, each with its log-probability and top alternatives (empty when the server gave none).</param>
public sealed record EndpointTurnTokens(int Message, IReadOnlyList<TokenLogprob> Tokens);

/// <summary>
/// The endpoint teacher's tokens of the kept answers, written by the generate stage beside its answer file
/// (<see cref="FileName"/>) when the teacher shares the student's tokenizer, and read by a token-level distill. JSON Lines:
/// a header <c>{"format": "teacher-tokens v1", "answers_xxhash128": "...", "answers": N}</c> that ties the file to the
/// answer file it goes with, then one line per kept answer, in the answer file's order:
/// <c>{"turns": [{"message": 1, "tokens": [{token, logprob, bytes, top_logprobs: [...]}]}]}</c> (the answer cache's form).
/// </summary>
public static class EndpointAnswerTokens
{
    /// <summary>The file's name, beside the answer file.</summary>
    public const string FileName = "teacher-tokens.jsonl";

    private const string Format = "teacher-tokens v1";

    /// <summary>Writes the tokens of every kept answer's turns, for the answer file <paramref name="answersFile"/> (atomically).</summary>
    public static void Write(string path, string answersFile, IReadOnlyList<IReadOnlyList<EndpointTurn>> turns)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(answersFile);
        ArgumentNullException.ThrowIfNull(turns);
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream))
        {
            writer.WriteStartObject();
            writer.WriteString("format", Format);
            writer.WriteString("answers_xxhash128", Hash(answersFile));
            writer.WriteNumber("answers", turns.Count);
            writer.WriteEndObject();
        }

        foreach (var answer in turns)
        {
            stream.WriteByte((byte)'\n');
            using var writer = new Utf8JsonWriter(stream);
            writer.WriteStartObject();
            writer.WriteStartArray("turns");
            foreach (var turn in answer)
            {
                writer.WriteStartObject();
                writer.WriteNumber("message", turn.Message);
                EndpointReply.WriteLogprobs(writer, "tokens", turn.Logprobs ?? []);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        stream.WriteByte((byte)'\n');
        AtomicFile.WriteAllText(path, Encoding.UTF8.GetString(stream.ToArray()));
    }

    /// <summary>
    /// Reads the file <see cref="Write"/> wrote for <paramref name="answersFile"/> holding <paramref name="answers"/>
    /// answers. MC2071 (the file and line) when it is not that file's: another format, another answer file (hash), another
    /// count, or a line that is not its JSON.
    /// </summary>
    public static IReadOnlyList<IReadOnlyList<EndpointTurnTokens>> Read(string path, string answersFile, int answers)
    {
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(answersFile);
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToList();
        var number = 1;
        try
        {
            using (var header = JsonDocument.Parse(lines.Count > 0 ? lines[0] : "{}"))
            {
                var root = header.RootElement;
                if (!root.TryGetProperty("format", out var format) || format.GetString() != Format)
                {
                    throw Damaged(path, 1, $"does not start with the header of '{Format}'");
                }

                if (root.GetProperty("answers_xxhash128").GetString() != Hash(answersFile) || root.GetProperty("answers").GetInt32() != answers || lines.Count - 1 != answers)
                {
                    throw Damaged(path, 1, $"was not written for the answer file '{answersFile}' beside it (its hash or count of {answers} answers differs)");
                }
            }

            var result = new List<IReadOnlyList<EndpointTurnTokens>>(answers);
            for (number = 2; number <= lines.Count; number++)
            {
                using var line = JsonDocument.Parse(lines[number - 1]);
                result.Add([.. line.RootElement.GetProperty("turns").EnumerateArray().Select(turn =>
                    new EndpointTurnTokens(turn.GetProperty("message").GetInt32(), EndpointReply.ReadLogprobs(turn.GetProperty("tokens"))))]);
            }

            return result;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw Damaged(path, number, $"is not teacher tokens JSON: {e.Message}");
        }
    }

    private static string Hash(string file) => Convert.ToHexStringLower(XxHash128.Hash(File.ReadAllBytes(file)));

    private static CompressionException Damaged(string path, int line, string why) =>
        CompressionException.Error(DiagnosticCodes.TeacherAnswersFileInvalid, $"The teacher's tokens '{path}' {why}; delete the generate stage's cache entry to have it written again.", path, line);
}
