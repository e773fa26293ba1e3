using ModelCompression.Diagnostics;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Text;

public sealed class ChatReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Chat_format_records_with_answers_are_labelled_and_the_rest_is_the_pool()
    {
        var path = ChatFixtures.File("chat.jsonl");

        var data = ChatReader.Read(path);

        Assert.Equal(ChatFormat.Messages, data.Format);
        Assert.Equal([1, 2, 5], data.Labelled.Select(r => r.Line));
        Assert.Equal([4], data.Unlabelled.Select(r => r.Line));
        var first = data.Labelled[0];
        Assert.Equal([new ChatMessage(ChatRole.System, "You are terse."), new ChatMessage(ChatRole.User, "What is 3 plus 4?"), new ChatMessage(ChatRole.Assistant, "7")], first.Messages);
        Assert.Equal("7", first.Answer);
        Assert.Equal(2, first.Prompt.Count);
        Assert.Equal($"{path}:1", first.Location);
        Assert.False(data.Labelled[1].Messages[1].Trained); // "weight": 0
        Assert.True(data.Labelled[1].Messages[3].Trained);
        Assert.Equal("はい 😀", data.Labelled[2].Answer);
        var pool = data.Unlabelled[0];
        Assert.False(pool.HasAnswer);
        Assert.Null(pool.Answer);
        Assert.Equal(pool.Messages, pool.Prompt);
    }

    [Fact]
    public void Prompt_completion_records_are_a_user_turn_and_an_answer_and_prompts_alone_are_the_pool()
    {
        var data = ChatReader.Read(ChatFixtures.File("prompts.jsonl"));

        Assert.Equal(ChatFormat.PromptCompletion, data.Format);
        var labelled = Assert.Single(data.Labelled);
        Assert.Equal([new ChatMessage(ChatRole.User, "Subject for: the meeting moved to Tuesday"), new ChatMessage(ChatRole.Assistant, "Meeting moved")], labelled.Messages);
        Assert.Equal([2, 3], data.Unlabelled.Select(r => r.Line));
        Assert.All(data.Unlabelled, r => Assert.Equal(ChatRole.User, Assert.Single(r.Messages).Role));
    }

    public static TheoryData<string, string> BadChat => new()
    {
        { """{"messages": [{"role": "user", "content": "hi"}""", "not valid JSON" },
        { """[{"role": "user", "content": "hi"}]""", "a JSON array, not an object" },
        { """{"conversation": []}""", "neither \"messages\"" },
        { """{"messages": [{"role": "user", "content": "hi"}], "prompt": "hi"}""", "both \"messages\" and \"prompt\"" },
        { """{"prompt": "hi", "completion": "there"}""", "a prompt-completion record in a file of chat (\"messages\") records (line 1)" },
        { """{"messages": {"role": "user", "content": "hi"}}""", "\"messages\" is a object, not an array" },
        { """{"messages": []}""", "\"messages\" is empty" },
        { """{"messages": ["hi"]}""", "message 1 is a string, not an object" },
        { """{"messages": [{"content": "hi"}]}""", "message 1 has no \"role\"" },
        { """{"messages": [{"role": 1, "content": "hi"}]}""", "message 1's \"role\" is a number, not a string" },
        { """{"messages": [{"role": "tool", "content": "hi"}]}""", "unknown role \"tool\"" },
        { """{"messages": [{"role": "user"}]}""", "message 1 has no \"content\"" },
        { """{"messages": [{"role": "user", "content": null}]}""", "message 1's \"content\" is a null, not a string" },
        { """{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}""", "content parts are not supported" },
        { """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}""", "message 2 (assistant) is empty" },
        { """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "tool_calls": []}]}""", "tool or function calls" },
        { """{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 0.5}]}""", "\"weight\": 0.5" },
        { """{"messages": [{"role": "user", "content": "hi", "weight": 1}]}""", "only assistant messages take a weight" },
        { """{"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}]}""", "message 2 is a system message" },
        { """{"messages": [{"role": "assistant", "content": "x"}]}""", "starts with a user message" },
        { """{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}""", "second user message in a row" },
        { """{"messages": [{"role": "system", "content": "be nice"}]}""", "no user message" },
    };

    [Theory]
    [MemberData(nameof(BadChat))]
    public void A_bad_chat_record_is_MC2022_with_file_and_line(string record, string problem)
    {
        var path = _dir.Write("chat.jsonl", $$"""
            {"messages": [{"role": "user", "content": "fine"}, {"role": "assistant", "content": "ok"}]}

            {{record}}
            """);

        var error = Assert.Throws<CompressionException>(() => ChatReader.Read(path));

        Assert.Equal((DiagnosticCodes.DataBadRows, path, 3), (error.Code, error.Diagnostics[0].File, error.Diagnostics[0].Line));
        Assert.Contains($"{path}:3: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string> BadPromptCompletion => new()
    {
        { "{\"prompt\": \"hi\", \"completion\": \"x\"", "not valid JSON" },
        { """{"completion": "x"}""", "a \"completion\" without a \"prompt\"" },
        { """{"prompt": 3, "completion": "x"}""", "\"prompt\" is a number, not a string" },
        { """{"prompt": " ", "completion": "x"}""", "\"prompt\" is empty" },
        { """{"prompt": "hi", "completion": ""}""", "\"completion\" is empty" },
        { """{"prompt": "hi", "completion": ["x"]}""", "\"completion\" is a array, not a string" },
        { """{"messages": [{"role": "user", "content": "hi"}]}""", "a chat (\"messages\") record in a file of prompt-completion records (line 1)" },
    };

    [Theory]
    [MemberData(nameof(BadPromptCompletion))]
    public void A_bad_prompt_completion_record_is_MC2022_with_file_and_line(string record, string problem)
    {
        var path = _dir.Write("prompts.jsonl", $"{{\"prompt\": \"fine\", \"completion\": \"ok\"}}\n{record}\n");

        var error = Assert.Throws<CompressionException>(() => ChatReader.Read(path));

        Assert.Equal((DiagnosticCodes.DataBadRows, path, 2), (error.Code, error.Diagnostics[0].File, error.Diagnostics[0].Line));
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_bad_record_is_reported_at_once_and_empty_or_missing_files_are_MC2021()
    {
        var path = _dir.Write("chat.jsonl", "{\"messages\": []}\n{\"messages\": [{\"role\": \"user\", \"content\": \"ok\"}]}\nnot json\n");
        var empty = _dir.Write("empty.jsonl", "\n  \n");

        var error = Assert.Throws<CompressionException>(() => ChatReader.Read(path));
        var none = Assert.Throws<CompressionException>(() => ChatReader.Read(empty));
        var missing = Assert.Throws<CompressionException>(() => ChatReader.Read(_dir.File("gone.jsonl")));

        Assert.Contains("2 bad rows", error.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:1: ", error.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:3: ", error.Message, StringComparison.Ordinal);
        Assert.Equal((DiagnosticCodes.DataUnreadable, empty), (none.Code, none.Diagnostics[0].File));
        Assert.Contains("no conversations", none.Message, StringComparison.Ordinal);
        Assert.Equal(DiagnosticCodes.DataUnreadable, missing.Code);
    }
}
