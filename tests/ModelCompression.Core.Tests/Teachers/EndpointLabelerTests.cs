using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Teachers;

namespace ModelCompression.Core.Tests.Teachers;

/// <summary>
/// The classifying endpoint teacher: the label a reply names, the soft target its top_logprobs give, the text as sent,
/// and whole labelling runs against the scripted server (cache, offline replay, a teacher that answers garbage).
/// </summary>
public sealed class EndpointLabelerTests : IDisposable
{
    private static readonly string[] Classes = ["ham", "spam"];
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("spam", 1)]
    [InlineData("  Spam.\n", 1)]
    [InlineData("HAM", 0)]
    [InlineData("ham .", 0)]
    [InlineData("spam!", null)]
    [InlineData("It is spam", null)]
    [InlineData("spam..", null)]
    [InlineData("", null)]
    public void A_reply_names_the_class_whose_name_it_is_ignoring_case_and_one_trailing_period(string reply, int? expected) =>
        Assert.Equal(expected, EndpointLabeler.ParseLabel(reply, Classes));

    [Fact]
    public void The_first_tokens_alternatives_give_each_class_the_mass_of_the_tokens_that_start_only_its_name()
    {
        string[] classes = ["positive", "negative", "neutral"];
        var first = new TokenLogprob("pos", Math.Log(0.6), null,
        [
            new TokenAlternative("pos", Math.Log(0.6), null),
            new TokenAlternative(" Neg", Math.Log(0.2), null),
            // Starts 'negative' and 'neutral': adds to neither.
            new TokenAlternative("ne", Math.Log(0.1), null),
            new TokenAlternative("positive", Math.Log(0.05), null),
            // Starts no class.
            new TokenAlternative("The", Math.Log(0.05), null),
        ]);

        var target = EndpointLabeler.SoftTarget(0, [first, new TokenLogprob("itive", -0.01, null, [])], classes);

        // positive 0.65, negative 0.2, neutral nothing: 0.65/0.85 and 0.2/0.85, neutral floored, then renormalised.
        var floor = EndpointLabeler.MinimumProbability;
        var sum = (0.65 / 0.85) + (0.2 / 0.85) + floor;
        Assert.Equal(0.65 / 0.85 / sum, target[0], 1e-12);
        Assert.Equal(0.2 / 0.85 / sum, target[1], 1e-12);
        Assert.Equal(floor / sum, target[2], 1e-12);
        Assert.Equal(1.0, target.Sum(), 1e-12);
    }

    [Fact]
    public void The_chosen_token_counts_when_the_server_left_it_out_of_the_alternatives()
    {
        var first = new TokenLogprob("spam", Math.Log(0.5), null, [new TokenAlternative("ham", Math.Log(0.25), null)]);
        var target = EndpointLabeler.SoftTarget(1, [first], Classes);
        Assert.Equal(1 / 3.0, target[0], 1e-12);
        Assert.Equal(2 / 3.0, target[1], 1e-12);
    }

    [Fact]
    public void Without_logprobs_or_without_any_class_mass_the_label_is_smoothed()
    {
        var smoothed = EndpointLabeler.SoftTarget(1, null, Classes);
        Assert.Equal([0.05, 0.95], smoothed, (a, b) => Math.Abs(a - b) < 1e-12);

        var noClass = new TokenLogprob("The", -0.1, null, [new TokenAlternative("A", -2.5, null)]);
        Assert.Equal(smoothed, EndpointLabeler.SoftTarget(1, [noClass], Classes));
    }

    [Fact]
    public void A_long_text_is_cut_to_its_first_characters_never_half_a_surrogate_pair()
    {
        var max = EndpointLabeler.MaxContentCharacters;
        Assert.Equal("short", EndpointLabeler.Content("short"));
        var exact = new string('a', max);
        Assert.Same(exact, EndpointLabeler.Content(exact));
        Assert.Equal(new string('a', max) + "…", EndpointLabeler.Content(new string('a', max + 10)));

        // An emoji across the cut: its high surrogate is the last character that would fit, so both halves go.
        var emoji = new string('b', max - 1) + "\U0001F600" + "tail";
        Assert.Equal(new string('b', max - 1) + "…", EndpointLabeler.Content(emoji));
    }

    [Fact]
    public void Class_names_a_reply_cannot_tell_apart_are_refused()
    {
        Assert.Null(EndpointLabeler.CheckClasses(Classes));
        var caseOnly = EndpointLabeler.CheckClasses(["Spam", "spam", "ham"], "mail.jsonl")!;
        Assert.Equal(DiagnosticCodes.EndpointClassNamesAmbiguous, caseOnly.Code);
        Assert.Contains("'Spam' and 'spam' differ only in case", caseOnly.Message, StringComparison.Ordinal);
        Assert.Contains("' ham' is empty or has white space", EndpointLabeler.CheckClasses([" ham", "spam"])!.Message, StringComparison.Ordinal);
        Assert.Contains("1 classes", EndpointLabeler.CheckClasses(["spam"])!.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_text_is_asked_once_its_reply_becomes_logits_and_a_second_run_is_served_from_the_cache()
    {
        using var server = new ScriptedChatServer(request => Answer(request.LastMessage));
        var options = EndpointTestSupport.Options(server) with { TopLogprobs = 3, Temperature = 0, MinSuccessRatio = 0.5 };
        TextToLabel[] texts =
        [
            new("win money now", "mail.jsonl", 1),
            new("lunch at noon?", "mail.jsonl", 2),
            new("win money now", "mail.jsonl", 3),
            new("totally unclear", "mail.jsonl", 4),
        ];

        var labels = EndpointLabeler.Label(texts, Classes, options, _dir.Dir("answers"));

        // Three distinct texts, three requests; the repeated text shares its reply.
        Assert.Equal(3, server.Requests.Count);
        var first = server.Requests.First(r => r.LastMessage.EndsWith("win money now", StringComparison.Ordinal));
        Assert.Equal("Classify the text as exactly one of: ham, spam. Reply with the label only.\n\nText: win money now", first.LastMessage);
        var body = JsonNode.Parse(first.Body)!;
        Assert.Equal((16, true, 3), (body["max_tokens"]!.GetValue<int>(), body["logprobs"]!.GetValue<bool>(), body["top_logprobs"]!.GetValue<int>()));

        Assert.Equal([1, 0, 1, -1], labels.Labels);
        Assert.Equal(2, labels.Classes);
        Assert.Equal(0.9 / 0.98, Math.Exp(labels.Logits[1]), 1e-6);
        Assert.Equal(0.08 / 0.98, Math.Exp(labels.Logits[0]), 1e-6);
        Assert.Equal(labels.Logits[..2], labels.Logits[4..6]);
        // The reply that names no class teaches nothing: uniform.
        Assert.Equal([0.5, 0.5], labels.Logits[6..8].Select(l => Math.Exp(l)), (a, b) => Math.Abs(a - b) < 1e-6);
        Assert.Equal((3, 0, 3, 2), (labels.Usage.Requests, labels.Usage.CacheHits, labels.Usage.Answers, labels.Usage.UsableAnswers));
        Assert.Equal(1, labels.Usage.Unusable["not_a_label"]);
        Assert.Equal("1", labels.Usage.Counts("endpoint.")["endpoint.unusable.not_a_label"]);

        var again = EndpointLabeler.Label(texts, Classes, options with { Offline = true }, _dir.Dir("answers"));
        Assert.Equal(3, server.Requests.Count);
        Assert.Equal((3, 0), (again.Usage.CacheHits, again.Usage.Sent));
        Assert.Equal(labels.Logits, again.Logits);
    }

    [Fact]
    public void Offline_without_the_answers_names_the_first_missing_texts_and_sends_nothing()
    {
        using var server = new ScriptedChatServer(request => Answer(request.LastMessage));
        var options = EndpointTestSupport.Options(server) with { Offline = true };
        var error = Assert.Throws<CompressionException>(() => EndpointLabeler.Label([new("first text", "mail.jsonl", 7), new("second", "mail.jsonl", 9)], Classes, options, _dir.Dir("answers")));
        Assert.Equal(DiagnosticCodes.EndpointAnswersMissingOffline, error.Code);
        Assert.Contains("lacks 2 of the 2 requests", error.Message, StringComparison.Ordinal);
        Assert.Contains("mail.jsonl:7 \"first text\"", error.Message, StringComparison.Ordinal);
        Assert.Equal(("mail.jsonl", 7), (error.Diagnostics[0].File, error.Diagnostics[0].Line));
        Assert.Empty(server.Requests);
    }

    [Fact]
    public void A_teacher_that_answers_garbage_fails_min_success_ratio_with_the_counts()
    {
        var calls = 0;
        using var server = new ScriptedChatServer(request => Interlocked.Increment(ref calls) % 5 == 0
            ? ScriptedChatServer.Ok("spam")
            : ScriptedChatServer.Ok("As an AI, I would say this looks like spam."));
        var texts = Enumerable.Range(1, 10).Select(i => new TextToLabel($"mail {i}", "mail.jsonl", i)).ToList();

        var error = Assert.Throws<CompressionException>(() => EndpointLabeler.Label(texts, Classes, EndpointTestSupport.Options(server), _dir.Dir("answers")));

        Assert.Equal(DiagnosticCodes.EndpointSuccessRatioTooLow, error.Code);
        Assert.Contains("Only 2 of 10 endpoint teacher answers were usable", error.Message, StringComparison.Ordinal);
        Assert.Contains("not_a_label 8", error.Message, StringComparison.Ordinal);
        // Every reply is cached: a run with a lower bar asks nothing again.
        var lenient = EndpointLabeler.Label(texts, Classes, EndpointTestSupport.Options(server) with { MinSuccessRatio = 0.1 }, _dir.Dir("answers"));
        Assert.Equal(10, server.Requests.Count);
        Assert.Equal(2, lenient.Labels.Count(l => l == 1));
    }

    [Fact]
    public void Options_of_generation_and_a_template_without_the_labels_are_refused()
    {
        Assert.Empty(EndpointLabeler.Problems(new EndpointTeacherOptions { PromptTemplate = "Labels: {labels}\n{content}" }));
        var problems = EndpointLabeler.Problems(new EndpointTeacherOptions { SamplesPerPrompt = 2, ChainOfThought = true, PromptTemplate = "{content}" }).Select(p => p.Key);
        Assert.Equal(["samples_per_prompt", "chain_of_thought", "prompt_template"], problems);
    }

    /// <summary>A teacher that knows: "win" texts are spam (with alternatives), "lunch" texts ham, anything else is not a label.</summary>
    private static ScriptedReply Answer(string message)
    {
        var (label, other) = message.Contains("win", StringComparison.Ordinal) ? ("spam", "ham") : message.Contains("lunch", StringComparison.Ordinal) ? ("ham", "spam") : ("unsure", "spam");
        return new ScriptedReply.Http(200, ScriptedChatServer.Completion([label], completionTokens: 1, logprobs: FirstToken(label, other)));
    }

    /// <summary>One answer token: the label at 0.9, the other class at 0.08, a token that starts no class at 0.02.</summary>
    internal static JsonArray FirstToken(string label, string other) =>
    [
        new JsonObject
        {
            ["token"] = label,
            ["logprob"] = Math.Log(0.9),
            ["top_logprobs"] = new JsonArray(
                new JsonObject { ["token"] = label, ["logprob"] = Math.Log(0.9) },
                new JsonObject { ["token"] = other, ["logprob"] = Math.Log(0.08) },
                new JsonObject { ["token"] = "The", ["logprob"] = Math.Log(0.02) }),
        },
    ];
}
