using System.Globalization;
using System.IO.Hashing;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Text;

namespace ModelCompression.Generation;

/// <summary>
/// The on-disk form of a <see cref="TeacherAnswerSet"/> (<see cref="TeacherAnswers.Write"/>, <see cref="TeacherAnswers.Read"/>):
/// the answer file, JSON Lines of <c>{"messages": [...], "source": "file:line", "sample": k}</c> that the chat reader
/// takes as labelled data, and the stats file beside it (<see cref="TeacherAnswers.StatsPath"/>), indented JSON:
/// <code>
/// {"format": "teacher-answers v1", "answers_xxhash128": "...", "prompts": 4, "samples_per_prompt": 1, "generated": 4,
///  "kept": 1, "dropped": {"unfinished": 0, "empty": 0, "no_final_number": 3, "not_a_label": 0, "duplicate": 0},
///  "generated_tokens": 51, "seconds": 0.12, "kept_per_prompt": [3, 1],
///  "dropped_answers": [{"source": "pool.jsonl:2", "sample": 0, "reason": "no_final_number", "text": "..."}]}
/// </code>
/// </summary>
internal static class TeacherAnswerFile
{
    // Relaxed escaping keeps '<', '&' and non-ASCII letters readable for users who open the file; it is still valid JSON.
    private static readonly JsonWriterOptions LineOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };
    private static readonly JsonWriterOptions StatsOptions = LineOptions with { Indented = true };

    /// <summary>See <see cref="TeacherAnswers.Write"/>.</summary>
    public static void Write(TeacherAnswerSet set, string path)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(path);
        using var stream = new MemoryStream();
        foreach (var answer in set.Answers)
        {
            using (var writer = new Utf8JsonWriter(stream, LineOptions))
            {
                writer.WriteStartObject();
                writer.WriteStartArray("messages");
                foreach (var message in answer.Record.Messages)
                {
                    writer.WriteStartObject();
                    writer.WriteString("role", RoleName(message.Role));
                    writer.WriteString("content", message.Content);
                    if (!message.Trained)
                    {
                        writer.WriteNumber("weight", 0);
                    }

                    writer.WriteEndObject();
                }

                writer.WriteEndArray();
                writer.WriteString("source", answer.Record.Location);
                writer.WriteNumber("sample", answer.Sample);
                writer.WriteEndObject();
            }

            stream.WriteByte((byte)'\n');
        }

        var bytes = stream.ToArray();
        AtomicFile.WriteAllText(TeacherAnswers.StatsPath(path), StatsJson(set, Hash(bytes)));
        AtomicFile.WriteAllText(path, Encoding.UTF8.GetString(bytes));
    }

    /// <summary>See <see cref="TeacherAnswers.Read"/>.</summary>
    public static TeacherAnswerSet Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var statsPath = TeacherAnswers.StatsPath(path);
        var (stats, dropped, answersHash) = ReadStats(statsPath);
        var answers = new List<TeacherAnswer>();
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

                answers.Add(ReadAnswer(line, path, number, stats.SamplesPerPrompt));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Damaged(path, null, $"cannot be read: {e.Message}");
        }

        if (answers.Count != stats.Kept)
        {
            throw Damaged(path, number + 1, Invariant($"it holds {answers.Count} answers but its stats ('{statsPath}') count {stats.Kept} kept: the file was cut or edited"));
        }

        // Each file is written atomically, but not the two together: the hash tells a pair that does not belong together.
        if (Hash(File.ReadAllBytes(path)) != answersHash)
        {
            throw Damaged(path, null, $"is not the file its stats ('{statsPath}') were written with (another hash): it was edited, or one of the two was replaced");
        }

        return new TeacherAnswerSet(answers, stats, dropped);
    }

    /// <summary>The answer file's hash, as its stats record it: XxHash128 of its bytes, 32 lowercase hex digits.</summary>
    private static string Hash(byte[] bytes) => Convert.ToHexStringLower(XxHash128.Hash(bytes));

    private static string StatsJson(TeacherAnswerSet set, string answersHash)
    {
        var stats = set.Stats;
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, StatsOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("format", TeacherAnswers.StatsFormat);
            writer.WriteString("answers_xxhash128", answersHash);
            writer.WriteNumber("prompts", stats.Prompts);
            writer.WriteNumber("samples_per_prompt", stats.SamplesPerPrompt);
            writer.WriteNumber("generated", stats.Generated);
            writer.WriteNumber("kept", stats.Kept);
            writer.WriteStartObject("dropped");
            foreach (var reason in Enum.GetValues<TeacherAnswerDropReason>())
            {
                writer.WriteNumber(TeacherAnswers.ReasonName(reason), stats.Dropped.GetValueOrDefault(reason));
            }

            writer.WriteEndObject();
            writer.WriteNumber("generated_tokens", stats.GeneratedTokens);
            writer.WriteNumber("seconds", stats.Seconds);
            writer.WriteStartArray("kept_per_prompt");
            foreach (var count in stats.KeptPerPrompt)
            {
                writer.WriteNumberValue(count);
            }

            writer.WriteEndArray();
            writer.WriteStartArray("dropped_answers");
            foreach (var answer in set.Dropped)
            {
                writer.WriteStartObject();
                writer.WriteString("source", answer.Location);
                writer.WriteNumber("sample", answer.Sample);
                writer.WriteString("reason", TeacherAnswers.ReasonName(answer.Reason));
                writer.WriteString("text", answer.Text);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    private static (TeacherAnswerStats Stats, IReadOnlyList<DroppedAnswer> Dropped, string AnswersHash) ReadStats(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Damaged(path, null, $"cannot be read ({e.Message}); it is written beside every teacher-answer file");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw Damaged(path, (int?)(e.LineNumber + 1), $"is not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})");
        }

        using (document)
        {
            try
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != TeacherAnswers.StatsFormat)
                {
                    throw new FormatException($"\"format\" is not \"{TeacherAnswers.StatsFormat}\"");
                }

                var answersHash = Field(root, "answers_xxhash128", JsonValueKind.String).GetString()!;
                var prompts = Count(root, "prompts");
                var samples = Count(root, "samples_per_prompt");
                var generated = Count(root, "generated");
                var kept = Count(root, "kept");
                var droppedCounts = Field(root, "dropped", JsonValueKind.Object);
                // The endpoint teachers' reasons came later: a stats file written before them counts none.
                var byReason = Enum.GetValues<TeacherAnswerDropReason>().ToDictionary(
                    r => r,
                    r => r >= TeacherAnswerDropReason.RequestFailed && !droppedCounts.TryGetProperty(TeacherAnswers.ReasonName(r), out _) ? 0 : Count(droppedCounts, TeacherAnswers.ReasonName(r)));
                var tokens = Field(root, "generated_tokens", JsonValueKind.Number).TryGetInt64(out var t) && t >= 0 ? t : throw new FormatException("\"generated_tokens\" is not a count");
                var seconds = Field(root, "seconds", JsonValueKind.Number).GetDouble();
                int[] keptPerPrompt = [.. Field(root, "kept_per_prompt", JsonValueKind.Array).EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var c) && c >= 0 ? c : throw new FormatException("\"kept_per_prompt\" holds something else than counts"))];
                var dropped = Field(root, "dropped_answers", JsonValueKind.Array).EnumerateArray().Select(ReadDropped).ToList();
                if (samples < 1 || generated != prompts * samples || kept + byReason.Values.Sum() != generated || keptPerPrompt.Length != samples + 1
                    || keptPerPrompt.Sum() != prompts || dropped.Count != byReason.Values.Sum() || dropped.Any(d => d.Sample >= samples))
                {
                    throw new FormatException("its counts do not add up (generated = prompts x samples_per_prompt = kept + dropped; kept_per_prompt has samples_per_prompt + 1 elements summing to prompts; one dropped answer per drop, of a sample below samples_per_prompt)");
                }

                return (new TeacherAnswerStats(prompts, samples, generated, kept, byReason, tokens, seconds, keptPerPrompt), dropped, answersHash);
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw Damaged(path, null, e.Message);
            }
        }
    }

    private static DroppedAnswer ReadDropped(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("\"dropped_answers\" holds something else than objects");
        }

        var (file, line) = Source(Field(element, "source", JsonValueKind.String).GetString()!);
        var reasonName = Field(element, "reason", JsonValueKind.String).GetString();
        var reason = Enum.GetValues<TeacherAnswerDropReason>().Cast<TeacherAnswerDropReason?>().FirstOrDefault(r => TeacherAnswers.ReasonName(r!.Value) == reasonName)
            ?? throw new FormatException($"a dropped answer's reason \"{reasonName}\" is none of {string.Join(", ", Enum.GetValues<TeacherAnswerDropReason>().Select(TeacherAnswers.ReasonName))}");
        return new DroppedAnswer(file, line, Count(element, "sample"), reason, Field(element, "text", JsonValueKind.String).GetString()!);
    }

    private static TeacherAnswer ReadAnswer(string line, string path, int number, int samples)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw Damaged(path, number, $"is not valid JSON ({e.Message.Split(" Path:")[0].TrimEnd('.')})");
        }

        using (document)
        {
            try
            {
                var root = document.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                {
                    throw new FormatException("the line is not a JSON object");
                }

                var messages = Field(root, "messages", JsonValueKind.Array).EnumerateArray().Select(ReadMessage).ToList();
                if (messages.Count < 2 || messages[^1].Role != ChatRole.Assistant || messages[^1].Content.Trim().Length == 0 || !messages.Any(m => m.Role == ChatRole.User))
                {
                    throw new FormatException("\"messages\" must hold a user message and end on a non-empty assistant answer");
                }

                var (file, at) = Source(Field(root, "source", JsonValueKind.String).GetString()!);
                var sample = Count(root, "sample");
                if (sample >= samples)
                {
                    throw new FormatException(Invariant($"\"sample\" {sample} is not below the stats' samples_per_prompt {samples}"));
                }

                return new TeacherAnswer(new ChatRecord(messages, file, at), sample);
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw Damaged(path, number, e.Message);
            }
        }
    }

    private static ChatMessage ReadMessage(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("a message is not an object");
        }

        var role = Field(element, "role", JsonValueKind.String).GetString() switch
        {
            "system" => ChatRole.System,
            "user" => ChatRole.User,
            "assistant" => ChatRole.Assistant,
            var other => throw new FormatException($"a message has the unknown role \"{other}\""),
        };
        var content = Field(element, "content", JsonValueKind.String).GetString()!;
        var trained = !element.TryGetProperty("weight", out var weight) || (weight.ValueKind == JsonValueKind.Number && weight.TryGetInt32(out var w) && w is 0 or 1
            ? w == 1
            : throw new FormatException("a message's \"weight\" is not 0 or 1"));
        return new ChatMessage(role, content, trained);
    }

    private static JsonElement Field(JsonElement element, string name, JsonValueKind kind) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == kind
            ? value
            : throw new FormatException($"\"{name}\" is {(value.ValueKind == JsonValueKind.Undefined ? "missing" : $"a {value.ValueKind.ToString().ToLowerInvariant()}")}, not a{(kind == JsonValueKind.Object || kind == JsonValueKind.Array ? "n" : "")} {kind.ToString().ToLowerInvariant()}");

    private static int Count(JsonElement element, string name) =>
        Field(element, name, JsonValueKind.Number).TryGetInt32(out var value) && value >= 0 ? value : throw new FormatException($"\"{name}\" is not a count");

    /// <summary>"file:line" split at the last colon (a Windows path has one of its own).</summary>
    private static (string File, int Line) Source(string source)
    {
        var colon = source.LastIndexOf(':');
        return colon > 0 && int.TryParse(source.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var line) && line >= 1
            ? (source[..colon], line)
            : throw new FormatException($"\"source\" \"{source}\" is not \"file:line\"");
    }

    internal static string RoleName(ChatRole role) => role.ToString().ToLowerInvariant();

    private static CompressionException Damaged(string path, int? line, string why) =>
        CompressionException.Error(
            DiagnosticCodes.TeacherAnswersFileInvalid,
            $"The teacher-answer file '{path}'{(line is null ? "" : Invariant($", line {line},"))} {why}. Delete it and its stats to generate the answers again.",
            path,
            line);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
