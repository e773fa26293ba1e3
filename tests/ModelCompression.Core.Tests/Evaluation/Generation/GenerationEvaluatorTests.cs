using ModelCompression.Core.Tests.Generation;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

/// <summary>
/// The evaluator on the PyTorch fixture decoder (tests/fixtures/decoder: byte vocabulary of 257, &lt;|endoftext|&gt;
/// 256, trained on plain documents without chat markers). Its template therefore has no markers: user and system
/// messages are their bare text, the generation prompt is one space, and an answer ends in &lt;|endoftext|&gt; (the byte
/// tokenizer's own special, id 256). So the user "The red fox" and the generation prompt make "The red fox ", which
/// the fixture continues with "jumps over the lazy dog." and end of text, as it learned.
/// </summary>
public sealed class GenerationEvaluatorTests
{
    internal static readonly ChatTemplateOptions Plain = new()
    {
        System = "{content}",
        User = "{content}",
        Assistant = " {content}<|endoftext|>",
        GenerationPrompt = " ",
        Markers = [],
    };

    private static readonly GenerationEvaluationOptions Options = new() { Threads = 1, Generation = new GenerationOptions { MaxNewTokens = 40 } };

    internal static ChatTemplate Template(ChatTemplateOptions? options = null) =>
        new(options ?? Plain, GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte)));

    internal static ChatRecord Record(string prompt, string answer, int line) =>
        new([new ChatMessage(ChatRole.User, prompt), new ChatMessage(ChatRole.Assistant, answer)], "test.jsonl", line);

    [Fact]
    public void Math_answers_are_the_fixtures_continuations_parsed_and_scored()
    {
        // Golds: right, right, a wrong last number, and one the prediction has no number for.
        ChatRecord[] test = [Record("1 2 3 4", "5 6 7", 1), Record("Ben has", "6 plums.", 2), Record("5 6", "7 8 9 10 11 12 14", 3), Record("The red fox", "it jumps 3 times", 4)];

        var result = GenerationEvaluator.Evaluate(DecoderFixture.Cached, Template(), test, new GenerativeTask(GenerativeTaskType.Math, AnswerPattern: "([0-9]+)"), Options);

        Assert.Equal(["5 6 7", "6 plums.", "7 8 9 10 11 12 13", "jumps over the lazy dog."], result.Predictions);
        Assert.All(result.FinishReasons, r => Assert.Equal(FinishReason.Eos, r));
        Assert.Equal([true, true, false, false], result.Scores.Correct!);
        Assert.Equal([1.0, 1, 0, 0], result.Scores.PerSample[GenerationMetricNames.ExactMatch]);
        Assert.Equal(0.5, result.Metrics[GenerationMetricNames.ExactMatch]);
        Assert.Equal(1, result.Scores.ParseFailureCount);
        Assert.Equal(AnswerParseFailure.NoFinalNumber, result.Scores.Failures[3]);
        Assert.Equal(0.25, result.Metrics[GenerationMetricNames.ParseFailureRate]);
        // Tokens: the answers' bytes plus end of text each.
        Assert.Equal(result.Predictions.Sum(p => p.Length + 1), result.GeneratedTokens);
        Assert.Equal(0, result.PromptsCut);
        Assert.Equal("The red fox ", result.Samples[3].Prompt);
        Assert.Equal(("it jumps 3 times", "jumps over the lazy dog.", "test.jsonl:4"), (result.Samples[3].Gold, result.Samples[3].Prediction, result.Samples[3].Location));
    }

    [Fact]
    public void Qa_summarization_and_nli_metrics_equal_a_hand_computation()
    {
        ChatRecord[] test = [Record("The red fox", "jumps over the dog", 1), Record("1 2 3 4", "5 6 7", 2)];

        var qa = GenerationEvaluator.Evaluate(DecoderFixture.Cached, Template(), test, new GenerativeTask(GenerativeTaskType.Qa), Options);

        // SQuAD: "jumps over lazy dog" (4 tokens, "the" dropped) against "jumps over dog" (3): P 3/4, R 1, F1 6/7.
        Assert.Equal([0.0, 1], qa.Scores.PerSample[GenerationMetricNames.ExactMatch]);
        Assert.Equal(6.0 / 7, qa.Scores.PerSample[GenerationMetricNames.F1][0], 1e-12);
        Assert.Equal((1 + (6.0 / 7)) / 2, qa.Metrics[GenerationMetricNames.F1], 1e-12);
        Assert.Equal([false, true], qa.Scores.Correct!);

        var summary = GenerationEvaluator.Evaluate(DecoderFixture.Cached, Template(), [Record("The red fox", "the lazy dog jumps", 1)], new GenerativeTask(GenerativeTaskType.Summarization), Options);

        // "jumps over the lazy dog" against "the lazy dog jumps": unigrams 4 of 5 / 4 of 4; bigrams 2 of 4 / 2 of 3
        // ("the lazy", "lazy dog"); longest common subsequence "the lazy dog", 3 of 5 / 3 of 4.
        Assert.Equal(2 * 0.8 / 1.8, summary.Metrics[GenerationMetricNames.Rouge1], 1e-12);
        Assert.Equal(2 * 0.5 * (2.0 / 3) / (0.5 + (2.0 / 3)), summary.Metrics[GenerationMetricNames.Rouge2], 1e-12);
        Assert.Equal(2 * 0.6 * 0.75 / 1.35, summary.Metrics[GenerationMetricNames.RougeL], 1e-12);
        Assert.Null(summary.Scores.Correct);

        // Label words: "6 plums." is the label "6 plums" (wrong: the gold is "7 plums"); "5 6 7" is no label at all.
        var nli = GenerationEvaluator.Evaluate(
            DecoderFixture.Cached, Template(), [Record("Ben has", "7 plums", 1), Record("1 2 3 4", "6 plums", 2)], new GenerativeTask(GenerativeTaskType.Nli, LabelWords: ["6 plums", "7 plums"]), Options);

        Assert.Equal([false, false], nli.Scores.Correct!);
        Assert.Equal([AnswerParseFailure.None, AnswerParseFailure.NotALabel], nli.Scores.Failures);
        Assert.Equal(0.5, nli.Metrics[GenerationMetricNames.ParseFailureRate]);
        Assert.Equal(0, nli.Metrics[GenerationMetricNames.LabelAccuracy]);
    }

    [Fact]
    public void Perplexity_is_exp_of_the_mean_nll_of_the_gold_answer_tokens()
    {
        ChatRecord[] test = [Record("The red fox", "jumps over the lazy dog.", 1), Record("1 2 3", "4 5 6 7", 2), Record("Ben has", "3 plums.", 3)];

        var result = GenerationEvaluator.Evaluate(DecoderFixture.Cached, Template(), test, new GenerativeTask(GenerativeTaskType.Conversation), Options with { Generation = Options.Generation! with { BatchSize = 2 } });

        // Independently: the sequence "prompt answer<eot>" alone (batch 1), scored at the answer's bytes and the end of
        // text, each predicted from the position before it.
        using var session = DecoderSession.Open(DecoderFixture.Cached, threads: 1);
        var nll = new List<double>();
        foreach (var record in test)
        {
            int[] ids = [.. DecoderFixture.Bytes(record.Messages[0].Content + " " + record.Answer), DecoderFixture.Eos];
            var first = ids.Length - record.Answer!.Length - 1;
            var logits = session.Forward([.. ids.Select(i => (long)i)], [.. ids.Select(_ => 1L)], [.. ids.Select((_, t) => (long)t)], 1);
            var sum = 0.0;
            for (var t = first; t < ids.Length; t++)
            {
                var row = logits.AsSpan((t - 1) * 257, 257).ToArray();
                var max = row.Max();
                sum -= row[ids[t]] - max - Math.Log(row.Sum(v => Math.Exp(v - max)));
            }

            nll.Add(sum);
        }

        var tokens = test.Sum(r => r.Answer!.Length + 1);
        Assert.Equal(tokens, result.PerplexityTokens);
        Assert.Equal(test.Select(r => r.Answer!.Length + 1), result.GoldTokens);
        Assert.Equal(Math.Exp(nll.Sum() / tokens), result.Perplexity, 1e-4);
        Assert.All(nll.Zip(result.NegativeLogLikelihoods), p => Assert.Equal(p.First, p.Second, 1e-3));
        Assert.Equal(result.Perplexity, result.Metrics[GenerationMetricNames.Perplexity]);
        // The fixture learned the first answer: its tokens are far likelier than the made-up third's.
        Assert.True(result.NegativeLogLikelihoods[0] / 25 < result.NegativeLogLikelihoods[2] / 9);
        Assert.Equal([GenerationMetricNames.ParseFailureRate, GenerationMetricNames.Perplexity], result.Metrics.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Per_sample_vectors_follow_the_records_whatever_the_batch()
    {
        ChatRecord[] test = [Record("1 2 3 4", "5 6 7", 1), Record("Ben has", "6 plums.", 2), Record("5 6", "7 8", 3), Record("The red fox", "jumps over the lazy dog.", 4), Record("Hello", "x", 5)];
        string[] teacher = ["5 6 7", "6 plums", "7 8 9 10 11 12 13", "jumps over a dog", "x"];
        var task = new GenerativeTask(GenerativeTaskType.Qa);

        var batched = GenerationEvaluator.Evaluate(DecoderFixture.Cached, Template(), test, task, Options, teacher);
        var reversed = GenerationEvaluator.Evaluate(DecoderFixture.Cached, Template(), [.. test.Reverse()], task, Options with { Generation = Options.Generation! with { BatchSize = 1 } }, [.. teacher.Reverse()]);

        Assert.Equal(batched.Predictions, reversed.Predictions.Reverse());
        foreach (var (name, scores) in batched.Scores.PerSample)
        {
            Assert.Equal(scores, reversed.Scores.PerSample[name].Reverse());
        }

        Assert.Equal(batched.NegativeLogLikelihoods.Select(v => Math.Round(v, 3)), reversed.NegativeLogLikelihoods.Reverse().Select(v => Math.Round(v, 3)));
        // Agreement is token F1 against the teacher's answer: identical answers score 1 ("6 plums." vs "6 plums" too).
        var agreement = batched.Scores.PerSample[GenerationMetricNames.AgreementWithTeacher];
        Assert.Equal([1.0, 1, 1], [agreement[0], agreement[1], agreement[2]]);
        // "jumps over lazy dog" against "jumps over dog" (SQuAD drops the articles): P 3/4, R 1, F1 6/7.
        Assert.Equal(6.0 / 7, agreement[3], 1e-12);
        Assert.Equal(agreement.Average(), batched.Metrics[GenerationMetricNames.AgreementWithTeacher], 1e-12);
        Assert.Equal(5, batched.Samples.Count);
        Assert.Equal("jumps over a dog", batched.Samples[3].Teacher);
    }

    [Fact]
    public void A_plain_text_end_marker_stops_generation_and_is_cut_off()
    {
        var template = Template(Plain with { Assistant = " {content}." });

        var result = GenerationEvaluator.Evaluate(DecoderFixture.Cached, template, [Record("Ben has", "6 plums", 1), Record("The red fox", "jumps over the lazy dog", 2)], new GenerativeTask(GenerativeTaskType.Qa), Options);

        Assert.Equal(["6 plums", "jumps over the lazy dog"], result.Predictions);
        Assert.All(result.FinishReasons, r => Assert.Equal(FinishReason.Stop, r));
        Assert.Equal(1, result.Metrics[GenerationMetricNames.ExactMatch]);
    }

    [Fact]
    public void A_prompt_that_fills_the_maximum_length_is_cut_to_leave_room_for_the_answer()
    {
        // The fixture has 64 positions. This prompt renders to all 64 (with the generation prompt's space): kept whole,
        // it left no position to answer in, and was scored as an empty answer. Now it keeps its last 64 - 30 tokens.
        var prompt = new string('.', 51) + " The red fox";
        Assert.Equal(63, prompt.Length);
        var options = Options with { MaxLength = 64, Generation = new GenerationOptions { MaxNewTokens = 30 } };

        var result = GenerationEvaluator.Evaluate(DecoderFixture.Cached, Template(), [Record(prompt, "jumps over the lazy dog.", 1)], new GenerativeTask(GenerativeTaskType.Qa), options);

        // What the fixture writes after 34 positions of dots is not what it learned; that it writes at all is the point.
        Assert.Equal(1, result.PromptsCut);
        Assert.InRange(result.GeneratedTokens, 1, 30);
        Assert.NotEqual("", result.Predictions[0]);
    }

    [Fact]
    public void Bad_input_is_refused_with_a_code()
    {
        var template = Template();
        var math = new GenerativeTask(GenerativeTaskType.Math);

        var empty = Assert.Throws<CompressionException>(() => GenerationEvaluator.Evaluate(DecoderFixture.Cached, template, [], math, Options));
        Assert.Equal(DiagnosticCodes.GenerationTestSplitInvalid, empty.Code);

        ChatRecord unanswered = new([new ChatMessage(ChatRole.User, "1 2 3")], "data/test.jsonl", 7);
        var noAnswer = Assert.Throws<CompressionException>(() => GenerationEvaluator.Evaluate(DecoderFixture.Cached, template, [Record("1 2", "#### 3", 1), unanswered], math, Options));
        Assert.Equal((DiagnosticCodes.GenerationTestSplitInvalid, "data/test.jsonl", 7), (noAnswer.Code, noAnswer.Diagnostics.Single().File, noAnswer.Diagnostics.Single().Line));

        var gold = Assert.Throws<CompressionException>(() => GenerationEvaluator.Evaluate(DecoderFixture.Cached, template, [Record("1 2", "#### 3", 1), Record("3 4", "five", 9)], math, Options));
        Assert.Equal((DiagnosticCodes.GoldAnswerUnparsable, 9), (gold.Code, gold.Diagnostics.Single().Line));

        var classifier = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "cnn_opset17.onnx");
        var notDecoder = Assert.Throws<CompressionException>(() => GenerationEvaluator.Evaluate(classifier, template, [Record("1 2", "#### 3", 1)], math, Options));
        Assert.Equal(DiagnosticCodes.DecoderNotInConvention, notDecoder.Code);

        // Markers as specials take ids 257 and up, which the fixture's 257 logits cannot give.
        var chatml = new ChatTemplate(new ChatTemplateOptions(), GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: new ChatTemplateOptions().Markers)));
        var mismatch = Assert.Throws<CompressionException>(() => GenerationEvaluator.Evaluate(DecoderFixture.Cached, chatml, [Record("1 2", "#### 3", 1)], math, Options));
        Assert.Equal(DiagnosticCodes.DecoderVocabularyMismatch, mismatch.Code);

        var badTask = Assert.Throws<CompressionException>(() => GenerationEvaluator.Evaluate(DecoderFixture.Cached, template, [Record("1 2", "#### 3", 1)], new GenerativeTask(GenerativeTaskType.Math, AnswerPattern: "[0-9]+"), Options));
        Assert.Equal(DiagnosticCodes.GenerativeTaskInvalid, badTask.Code);

        Assert.Throws<ArgumentException>(() => GenerationEvaluator.Evaluate(DecoderFixture.Cached, template, [Record("1 2", "#### 3", 1)], math, Options, teacherAnswers: ["#### 3", "#### 4"]));
    }
}
