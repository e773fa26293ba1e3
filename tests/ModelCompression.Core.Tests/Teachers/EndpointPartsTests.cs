using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Teachers;
using ModelCompression.Text;
using static ModelCompression.Core.Tests.Teachers.EndpointTestSupport;

namespace ModelCompression.Core.Tests.Teachers;

/// <summary>
/// The endpoint teacher's parts on their own: options and their problems, prompts and request bodies, cache keys, the
/// reply parser on the shapes vLLM, Ollama and Azure document, chain-of-thought JSON, and the retry backoff.
/// </summary>
public sealed class EndpointPartsTests
{
    [Fact]
    public void Defaults_are_azure_distillations_and_max_tokens_follows_the_task()
    {
        var options = new EndpointTeacherOptions();

        Assert.Equal((0.2, 0.1, 5, 0.7), (options.Temperature, options.TopP, options.RequestBatchSize, options.MinSuccessRatio));
        Assert.Equal(128, options.AnswerTokens(MathTask));
        Assert.Equal(1024, options.AnswerTokens(new GenerativeTask(GenerativeTaskType.Summarization)));
        Assert.Equal(300, (options with { MaxTokens = 300 }).AnswerTokens(new GenerativeTask(GenerativeTaskType.Summarization)));
        Assert.Equal(["endpoint", "model"], options.Problems().Select(p => p.Key));
    }

    [Fact]
    public void Problems_name_their_keys_and_never_echo_credentials()
    {
        var options = new EndpointTeacherOptions
        {
            Endpoint = "https://user:hunter2@example.com/v1",
            Model = "m",
            ApiKeyEnv = "sk-live-123",
            ApiKeyHeader = "api key",
            SamplesPerPrompt = 2,
            Temperature = 0,
            Stop = [""],
            PromptTemplate = "Answer this.",
            ReasoningWords = 10,
            Offline = true,
            BudgetRequests = 3,
        };

        var problems = options.Problems().ToList();

        Assert.Equal(
            ["endpoint", "api_key_env", "api_key_header", "samples_per_prompt", "stop", "prompt_template", "reasoning_words", "budget_requests"],
            problems.Select(p => p.Key));
        Assert.DoesNotContain(problems, p => p.Problem.Contains("hunter2", StringComparison.Ordinal) || p.Problem.Contains("sk-live", StringComparison.Ordinal));
        Assert.Contains("http:// or https://", new EndpointTeacherOptions { Endpoint = "ftp://x/v1", Model = "m" }.Problems().Single().Problem, StringComparison.Ordinal);
        Assert.Equal("endpoint", new EndpointTeacherOptions { Endpoint = "http://x/models?api-version=1", Model = "m" }.Problems().Single().Key);

        var error = Assert.Throws<CompressionException>(() => EndpointTeacher.Requests(MathPrompts(1), MathTask, options));
        Assert.Equal(DiagnosticCodes.EndpointTeacherOptionsInvalid, error.Code);
        Assert.DoesNotContain("hunter2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_body_is_written_in_one_order_with_only_what_is_set()
    {
        var options = new EndpointTeacherOptions { Endpoint = "http://127.0.0.1:1/v1", Model = "m", PromptTemplate = "Q: {content}" };

        var request = EndpointRequest.Create(TeacherPrompts.RequestMessages(MathPrompts(2)[0], 1, MathTask, options), MathTask, options);

        Assert.Equal("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Q: What is 2 plus 2?\"}],\"temperature\":0.2,\"top_p\":0.1,\"max_tokens\":128}", request.Body);
        Assert.Equal(64, request.Key.Length);
        Assert.Equal(EndpointRequest.KeyOf(request.Body), request.Key);

        var everything = options with { Stop = ["END"], FrequencyPenalty = 0.5, PresencePenalty = -0.5, Seed = 0, SamplesPerPrompt = 2, TopLogprobs = 3 };
        var full = EndpointRequest.Create([new ChatMessage(ChatRole.User, "x")], MathTask, everything);
        Assert.Equal(
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":0.2,\"top_p\":0.1,\"max_tokens\":128,\"stop\":[\"END\"],\"frequency_penalty\":0.5,\"presence_penalty\":-0.5,\"seed\":0,\"n\":2,\"logprobs\":true,\"top_logprobs\":3}",
            full.Body);
        Assert.Equal(2, full.Choices);
        Assert.Equal(full, EndpointRequest.FromBody(full.Body));
    }

    [Fact]
    public void The_key_covers_model_messages_and_sampling_but_not_the_url_the_key_or_how_requests_are_sent()
    {
        var options = new EndpointTeacherOptions { Endpoint = "http://a:1/v1", Model = "m", ApiKeyEnv = "A" };
        var prompt = MathPrompts(2);
        string Key(EndpointTeacherOptions o) => EndpointTeacher.Requests(prompt, MathTask, o).Single().Key;
        var key = Key(options);

        Assert.Equal(key, Key(options with { Endpoint = "https://b.example/models", ApiKeyEnv = "B", ApiVersion = "2024-05-01-preview", RequestBatchSize = 9, TimeoutSeconds = 3, MaxRetries = 0, BudgetRequests = 2, MinSuccessRatio = 0 }));
        Assert.NotEqual(key, Key(options with { Model = "m2" }));
        Assert.NotEqual(key, Key(options with { Temperature = 0.3 }));
        Assert.NotEqual(key, Key(options with { MaxTokens = 64 }));
        Assert.NotEqual(key, Key(options with { SystemPrompt = "Be exact." }));
        Assert.NotEqual(key, Key(options with { TopLogprobs = 1 }));
        Assert.NotEqual(key, EndpointTeacher.Requests(MathPrompts(3), MathTask, options).Single().Key);
    }

    [Fact]
    public void Each_task_has_a_default_template_and_nli_names_its_labels()
    {
        var nli = new GenerativeTask(GenerativeTaskType.Nli, LabelWords: ["yes", "no", "maybe"]);

        Assert.EndsWith("Answer with exactly one word: yes, no or maybe.", TeacherPrompts.DefaultTemplate(nli), StringComparison.Ordinal);
        Assert.Contains("'#### <number>'", TeacherPrompts.DefaultTemplate(MathTask), StringComparison.Ordinal);
        Assert.Equal("{content}", TeacherPrompts.DefaultTemplate(new GenerativeTask(GenerativeTaskType.Conversation)));
        Assert.All(Enum.GetValues<GenerativeTaskType>(), t => Assert.StartsWith("{content}", TeacherPrompts.DefaultTemplate(new GenerativeTask(t)), StringComparison.Ordinal));
    }

    [Fact]
    public void A_labelled_record_has_its_final_answer_replaced_and_a_pool_record_one_added()
    {
        var labelled = new ChatRecord([new(ChatRole.User, "q"), new(ChatRole.Assistant, "gold")], "train.jsonl", 3);

        Assert.Equal([1], TeacherPrompts.AnswerSlots(labelled, MathTask));
        Assert.Equal([1], TeacherPrompts.AnswerSlots(MathPrompts(1)[0], MathTask));
        Assert.Equal([1], TeacherPrompts.AnswerSlots(labelled, new GenerativeTask(GenerativeTaskType.Conversation)));
        Assert.Throws<ArgumentException>(() => TeacherPrompts.AnswerSlots(new ChatRecord([new(ChatRole.System, "s")], "x.jsonl", 1), MathTask));
    }

    /// <summary>
    /// Reply shapes as the servers document them (vLLM's ChatCompletionResponse in vllm/entrypoints/openai/protocol.py,
    /// Ollama's OpenAI compatibility page, Azure AI model inference's GetChatCompletions response and Azure OpenAI's with
    /// content-filter results), trimmed to one choice.
    /// </summary>
    [Theory]
    [InlineData("vllm", """
        {"id":"chatcmpl-8f1","object":"chat.completion","created":1733000000,"model":"meta-llama/Llama-3.1-8B-Instruct",
         "choices":[{"index":0,"message":{"role":"assistant","reasoning_content":null,"content":"#### 4","tool_calls":[]},
                     "logprobs":null,"finish_reason":"stop","stop_reason":null}],
         "usage":{"prompt_tokens":21,"total_tokens":25,"completion_tokens":4,"prompt_tokens_details":null},
         "prompt_logprobs":null,"kv_transfer_params":null}
        """, 21, 4, null)]
    [InlineData("ollama", """
        {"id":"chatcmpl-374","object":"chat.completion","created":1733000000,"model":"llama3.2","system_fingerprint":"fp_ollama",
         "choices":[{"index":0,"message":{"role":"assistant","content":"#### 4"},"finish_reason":"stop"}],
         "usage":{"prompt_tokens":30,"completion_tokens":4,"total_tokens":34}}
        """, 30, 4, null)]
    [InlineData("azure-ai-inference", """
        {"id":"7a5e","object":"chat.completion","created":1733000000,"model":"DeepSeek-R1",
         "choices":[{"index":0,"message":{"role":"assistant","content":"#### 4","reasoning_content":"Two and two.","tool_calls":null},
                     "finish_reason":"stop","logprobs":null}],
         "usage":{"prompt_tokens":12,"total_tokens":40,"completion_tokens":28,"completion_tokens_details":{"reasoning_tokens":20}}}
        """, 12, 28, "Two and two.")]
    [InlineData("azure-openai", """
        {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"finish_reason":"stop","index":0,"logprobs":null,
                     "message":{"annotations":[],"content":"#### 4","refusal":null,"role":"assistant"}}],
         "created":1733000000,"id":"chatcmpl-A1","model":"gpt-4o-2024-08-06","object":"chat.completion",
         "prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],
         "system_fingerprint":"fp_b705f0c291","usage":{"completion_tokens":4,"prompt_tokens":18,"total_tokens":22}}
        """, 18, 4, null)]
    public void The_reply_parser_reads_each_servers_documented_shape(string server, string body, long prompt, long completion, string? reasoning)
    {
        var reply = EndpointReply.Parse(body, 1);

        var choice = Assert.Single(reply.Choices);
        Assert.Equal(("#### 4", "stop", reasoning), (choice.Text, choice.FinishReason, choice.Reasoning));
        Assert.False(choice.WasCut, server);
        Assert.Equal((prompt, completion), (reply.PromptTokens, reply.CompletionTokens));
    }

    [Fact]
    public void The_reply_parser_is_lenient_about_what_it_does_not_use_and_strict_about_what_it_does()
    {
        var parts = EndpointReply.Parse("""{"choices":[{"message":{"content":[{"type":"text","text":"#### "},{"type":"text","text":"4"}]},"finish_reason":null}]}""", 1);
        Assert.Equal(("#### 4", null, 0L), (parts.Choices[0].Text, parts.Choices[0].FinishReason, parts.TotalTokens));
        Assert.Equal(string.Empty, EndpointReply.Parse("""{"choices":[{"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]}""", 1).Choices[0].Text);
        Assert.True(EndpointReply.Parse("""{"choices":[{"message":{"content":"x"},"finish_reason":"length"}]}""", 1).Choices[0].WasCut);
        var reordered = EndpointReply.Parse("""{"choices":[{"index":1,"message":{"content":"b"}},{"index":0,"message":{"content":"a"}}]}""", 2);
        Assert.Equal(["a", "b"], reordered.Choices.Select(c => c.Text));

        Assert.Throws<FormatException>(() => EndpointReply.Parse("{\"choices\": [", 1));
        Assert.Throws<FormatException>(() => EndpointReply.Parse("""{"object":"chat.completion"}""", 1));
        Assert.Throws<FormatException>(() => EndpointReply.Parse("""{"choices":[{"index":0,"message":{"content":"a"}}]}""", 2));
        Assert.Throws<FormatException>(() => EndpointReply.Parse("""{"choices":[{"index":0,"text":"a completion, not a chat completion"}]}""", 1));
        Assert.Throws<FormatException>(() => EndpointReply.Parse("""{"choices":[{"message":{"content":"a"},"logprobs":{"content":[{"logprob":-1}]}}]}""", 1));
    }

    [Theory]
    [InlineData("{\"reason\": \"r\", \"answer\": \"entailment\"}", "r", "entailment")]
    [InlineData("  ```json\n{\"reason\": \"r\", \"answer\": \"a\"}\n```  ", "r", "a")]
    [InlineData("```\n{\"answer\": 42, \"reason\": \"\"}\n```", "", "42")]
    public void Chain_of_thought_replies_are_read(string reply, string reason, string answer)
    {
        Assert.True(ChainOfThought.TryParse(reply, out var readReason, out var readAnswer));
        Assert.Equal((reason, answer), (readReason, readAnswer));
    }

    [Theory]
    [InlineData("entailment")]
    [InlineData("Sure! {\"reason\": \"r\", \"answer\": \"a\"}")]
    [InlineData("{\"answer\": \"a\"}")]
    [InlineData("{\"reason\": \"r\", \"answer\": [\"a\"]}")]
    [InlineData("[{\"reason\": \"r\", \"answer\": \"a\"}]")]
    public void Replies_that_are_not_the_json_asked_for_are_refused(string reply) =>
        Assert.False(ChainOfThought.TryParse(reply, out _, out _));

    [Fact]
    public void Backoff_doubles_per_retry_with_jitter_up_to_the_cap()
    {
        var policy = new EndpointRetryPolicy(new EndpointTeacherOptions { RetryDelaySeconds = 1, RetryMaxDelaySeconds = 60 }, (_, _) => Task.CompletedTask, new EndpointCounters());

        Assert.Equal(TimeSpan.FromSeconds(0.5), policy.Backoff(1, 0));
        Assert.Equal(TimeSpan.FromSeconds(1), policy.Backoff(1, 1));
        Assert.Equal(TimeSpan.FromSeconds(3), policy.Backoff(3, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(60), policy.Backoff(10, 1));
        Assert.Equal(["408", "413", "429", "500", "599"], new[] { 408, 413, 429, 500, 599 }.Select(EndpointRetryPolicy.CauseOf));
        Assert.All(new[] { 200, 400, 401, 404, 422 }, s => Assert.Null(EndpointRetryPolicy.CauseOf(s)));
    }

    [Fact]
    public void Batch_request_bodies_round_trip_through_json_unchanged()
    {
        var options = new EndpointTeacherOptions { Endpoint = "http://127.0.0.1:1/v1", Model = "m", Stop = ["ü<&>"] };
        var request = EndpointTeacher.Requests([new ChatRecord([new ChatMessage(ChatRole.User, "Grüße \"quoted\" \u2028 <tag>")], "p.jsonl", 1)], MathTask, options).Single();

        var reparsed = JsonNode.Parse(request.Body)!;

        Assert.Equal("Grüße \"quoted\" \u2028 <tag>", reparsed["messages"]![0]!["content"]!.GetValue<string>().Split("\n\n")[0]);
        Assert.Equal("ü<&>", reparsed["stop"]![0]!.GetValue<string>());
    }
}
