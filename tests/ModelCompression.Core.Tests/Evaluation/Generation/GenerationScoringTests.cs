using ModelCompression.Core.Tests.Generation;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;
using ModelCompression.Generation;
using ModelCompression.Text;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

public sealed class GenerationScoringTests(ITestOutputHelper output)
{
    [Fact]
    public void Math_agreement_compares_parsed_answers_and_a_refused_side_disagrees()
    {
        string[] golds = ["#### 7", "#### 10", "#### 3", "#### 4"];
        string[] predictions = ["so #### 7.0", "#### 9", "three", "#### 4"];
        string[] teacher = ["#### 7", "#### 9", "three", "I think 4"];

        var scores = GenerationScoring.Score(new GenerativeTask(GenerativeTaskType.Math), predictions, golds, teacher);

        Assert.Equal([true, false, false, true], scores.Correct!);
        Assert.Equal(0.5, scores.Metrics[GenerationMetricNames.ExactMatch]);
        // Equal parsed answers agree (7 = 7.0, 9 = 9); a side the parser refuses never does.
        Assert.Equal([1.0, 1, 0, 0], scores.PerSample[GenerationMetricNames.AgreementWithTeacher]);
        Assert.Equal(0.25, scores.Metrics[GenerationMetricNames.ParseFailureRate]);
        Assert.Equal(1, scores.ParseFailuresByReason[AnswerParseFailure.NoFinalNumber]);
        Assert.Equal([AnswerParseFailure.None, AnswerParseFailure.None, AnswerParseFailure.NoFinalNumber, AnswerParseFailure.NoFinalNumber], scores.TeacherFailures!);
    }

    [Fact]
    public void Conversation_has_no_reference_metric_but_parse_failures_and_agreement()
    {
        var scores = GenerationScoring.Score(new GenerativeTask(GenerativeTaskType.Conversation), ["Hello there", "  "], ["Hi!", "Bye."], ["hello THERE.", "bye"]);

        Assert.Equal([GenerationMetricNames.AgreementWithTeacher, GenerationMetricNames.ParseFailureRate], scores.Metrics.Keys.Order(StringComparer.Ordinal));
        Assert.Equal([1.0, 0], scores.PerSample[GenerationMetricNames.AgreementWithTeacher]);
        Assert.Equal(0.5, scores.Metrics[GenerationMetricNames.ParseFailureRate]);
        Assert.Equal(AnswerParseFailure.Empty, scores.Failures[1]);
        Assert.Null(scores.Correct);
    }

    [Fact]
    public void Bad_options_and_bad_golds_have_codes()
    {
        Assert.Equal(DiagnosticCodes.GenerativeTaskInvalid, Assert.Throws<CompressionException>(() =>
            GenerationScoring.Score(new GenerativeTask(GenerativeTaskType.Nli, LabelWords: ["yes"]), ["yes"], ["yes"])).Code);
        Assert.Equal(DiagnosticCodes.GoldAnswerUnparsable, Assert.Throws<CompressionException>(() =>
            GenerationScoring.Score(new GenerativeTask(GenerativeTaskType.Summarization), ["a"], [" "])).Code);
        Assert.Throws<ArgumentException>(() => GenerationScoring.Score(new GenerativeTask(GenerativeTaskType.Qa), ["a"], ["a", "b"]));
        Assert.Throws<ArgumentException>(() => GenerationScoring.Score(new GenerativeTask(GenerativeTaskType.Qa), [], []));
    }

    [Fact]
    public void Task_options_are_checked_and_defaults_follow_azure()
    {
        Assert.Empty(new GenerativeTask(GenerativeTaskType.Math, AnswerPattern: @"answer: (\d+)").Problems());
        Assert.Contains("capture group", Assert.Single(new GenerativeTask(GenerativeTaskType.Math, AnswerPattern: @"\d+").Problems()), StringComparison.Ordinal);
        Assert.Contains("math task only", Assert.Single(new GenerativeTask(GenerativeTaskType.Qa, AnswerPattern: "(x)").Problems()), StringComparison.Ordinal);
        Assert.Contains("nli task only", Assert.Single(new GenerativeTask(GenerativeTaskType.Math, LabelWords: ["a", "b"]).Problems()), StringComparison.Ordinal);
        Assert.Single(new GenerativeTask(GenerativeTaskType.Nli, LabelWords: ["Yes", "yes."]).Problems());
        Assert.Equal(128, new GenerativeTask(GenerativeTaskType.Qa).DefaultMaxNewTokens);
        Assert.Equal(1024, new GenerativeTask(GenerativeTaskType.Summarization).DefaultMaxNewTokens);
        Assert.Equal(GenerativeTaskType.Summarization, GenerativeTask.Parse("summarization"));
        Assert.Null(GenerativeTask.Parse("Math"));
        Assert.IsType<LabelAnswerParser>(new GenerativeTask(GenerativeTaskType.Nli).CreateParser());
    }

    [Fact]
    public void Every_metric_a_task_can_give_is_described_once_and_among_all_once()
    {
        var names = MetricInfo.Generation.Select(m => m.Name).ToList();

        Assert.Equal(names.Count, names.Distinct(StringComparer.Ordinal).Count());
        Assert.All(Enum.GetValues<GenerativeTaskType>().SelectMany(t => new GenerativeTask(t).QualityMetrics), n => Assert.Contains(n, names));
        Assert.All(typeof(GenerationMetricNames).GetFields().Select(f => (string)f.GetRawConstantValue()!), n => Assert.Contains(n, names));
        Assert.Equal([GenerationMetricNames.AgreementWithTeacher], MetricInfo.Generation.Where(m => m.NeedsTeacher).Select(m => m.Name));
        // Every generation metric is among all, each name once (agreement_with_teacher with classification's entry).
        Assert.All(names, n => Assert.Single(MetricInfo.All, m => m.Name == n));
    }

    [Fact]
    public void The_end_marker_is_a_special_token_or_plain_text()
    {
        var chatml = new ChatTemplateOptions();
        var bytes = GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: chatml.Markers));
        var template = new ChatTemplate(chatml, bytes);

        Assert.Equal(("<|end|>", true), GenerationEvaluator.EndMarker(template));
        Assert.Equal(("<|end|>", true), GenerationEvaluator.EndMarker(new ChatTemplate(chatml with { Assistant = "<|assistant|>\n{content}\n<|end|>\n" }, bytes)));
        var options = GenerationEvaluator.AnswerOptions(template, new GenerativeTask(GenerativeTaskType.Summarization));
        Assert.Equal([256, bytes.SpecialTokens["<|end|>"]], options.StopTokenIds);
        Assert.Equal((1024, 1, true, 256), (options.MaxNewTokens, options.SamplesPerPrompt, options.IsGreedy, options.PadTokenId!.Value));
        Assert.Empty(options.StopStrings);

        var plain = GenerationEvaluatorTests.Template(GenerationEvaluatorTests.Plain with { Assistant = " {content}\n###\n" });
        Assert.Equal(("\n###", false), GenerationEvaluator.EndMarker(plain));
        var plainOptions = GenerationEvaluator.AnswerOptions(plain, new GenerativeTask(GenerativeTaskType.Qa), new GenerationOptions { Temperature = 0.2, TopP = 0.1, SamplesPerPrompt = 3 });
        Assert.Equal(["\n###"], plainOptions.StopStrings);
        Assert.Equal("ab", plainOptions.Decode!([97, 98]));
        Assert.Equal((128, 1, 0.2), (plainOptions.MaxNewTokens, plainOptions.SamplesPerPrompt, plainOptions.Temperature));
        Assert.Null(GenerationEvaluator.EndMarker(GenerationEvaluatorTests.Template(GenerationEvaluatorTests.Plain with { Assistant = " {content}\n" })));
    }

    [Fact]
    public void Right_or_wrong_metrics_compare_by_McNemar_and_graded_ones_by_bootstrap()
    {
        var math = new GenerativeTask(GenerativeTaskType.Math);
        string[] golds = [.. Enumerable.Range(0, 12).Select(i => $"#### {i}")];
        var baseline = GenerationScoring.Score(math, [.. golds.Select((g, i) => i < 2 ? g : "#### 99")], golds);
        var candidate = GenerationScoring.Score(math, golds, golds);

        var exact = GenerationSignificance.Compare(GenerationMetricNames.ExactMatch, baseline, candidate);

        // 10 records only the candidate gets right, none only the baseline: exact two-sided p = 2 / 2^10.
        Assert.Equal((0, 10), (exact.McNemar!.BaselineOnlyCorrect, exact.McNemar.CandidateOnlyCorrect));
        Assert.Equal(2.0 / 1024, exact.PValue, 1e-12);
        Assert.Equal((2.0 / 12, 1.0), (exact.Baseline, exact.Candidate));
        Assert.True(exact.CandidateSignificantlyBetter());
        Assert.Null(exact.Bootstrap);

        var summaries = new GenerativeTask(GenerativeTaskType.Summarization);
        string[] references = ["the cat sat", "a dog ran far", "birds fly south", "rain fell all day"];
        var worse = GenerationScoring.Score(summaries, ["the cat", "dog", "birds fly", "rain"], references);
        var better = GenerationScoring.Score(summaries, references, references);

        var rouge = GenerationSignificance.Compare(GenerationMetricNames.RougeL, worse, better);

        var direct = PairedBootstrap.Compare([.. worse.PerSample[GenerationMetricNames.RougeL]], [.. better.PerSample[GenerationMetricNames.RougeL]]);
        Assert.Equal(direct, rouge.Bootstrap);
        Assert.Equal((worse.Metrics[GenerationMetricNames.RougeL], 1.0), (rouge.Baseline, rouge.Candidate));
        Assert.Null(rouge.McNemar);
        Assert.Throws<ArgumentException>(() => GenerationSignificance.Compare(GenerationMetricNames.Perplexity, worse, better));
        Assert.Throws<ArgumentException>(() => GenerationSignificance.Compare(GenerationMetricNames.ExactMatch, worse, better));
        Assert.Throws<ArgumentException>(() => GenerationSignificance.Compare(GenerationMetricNames.ExactMatch, baseline, GenerationScoring.Score(math, ["#### 1"], ["#### 1"])));
    }

    [Fact]
    public void Footprint_counts_the_fixtures_weights_and_file()
    {
        var footprint = ModelFootprint.Measure(DecoderFixture.Cached);

        Assert.Equal(new FileInfo(DecoderFixture.Cached).Length, footprint.SizeBytes);
        Assert.Equal(footprint.SizeBytes / 1e6, footprint.Metrics["size_mb"]);
        // Token table 257x64, positions 64x64, per layer two LayerNorms (2x128), c_attn 64x192+192, c_proj 64x64+64,
        // MLP 64x256+256 and 256x64+64, the final LayerNorm 128 and the exporter's own copy of the tied head 64x257.
        const long layer = 128 + (64 * 192) + 192 + (64 * 64) + 64 + 128 + (64 * 256) + 256 + (256 * 64) + 64;
        Assert.Equal((257 * 64) + (64 * 64) + (2 * layer) + 128 + (64 * 257), footprint.Parameters);
        Assert.InRange(footprint.NonZeroParameters, footprint.Parameters - 100, footprint.Parameters);
    }

    [Fact]
    public void Speed_counts_a_fixed_number_of_new_tokens_at_batch_1_and_8()
    {
        IReadOnlyList<IReadOnlyList<int>> prompts = [DecoderFixture.Bytes("The red fox "), DecoderFixture.Bytes("1 2 3 ")];

        var speed = GenerationSpeed.Measure(DecoderFixture.Cached, prompts, new GenerationSpeedOptions { NewTokens = 16, Runs = 1, Threads = 1 });
        var clamped = GenerationSpeed.Measure(DecoderFixture.NoCache, prompts, new GenerationSpeedOptions { NewTokens = 100, Prompts = 2, BatchSize = 2, Runs = 1, Threads = 1 });

        output.WriteLine($"fixture, 1 thread, 8 prompts x 16 new tokens: {speed.TokensPerSecond:0} tokens/s at batch 1, {speed.TokensPerSecondBatch:0} at batch 8");
        Assert.Equal((16, 8, 8, true), (speed.NewTokens, speed.Prompts, speed.BatchSize, speed.UsedCache));
        Assert.True(speed.TokensPerSecond > 0 && double.IsFinite(speed.TokensPerSecond) && speed.TokensPerSecondBatch > 0);
        Assert.Equal([GenerationMetricNames.TokensPerSecond, GenerationMetricNames.TokensPerSecondBatch], speed.Metrics.Keys);
        // 64 positions less the longest prompt's 12 tokens.
        Assert.Equal((52, false), (clamped.NewTokens, clamped.UsedCache));
        Assert.Throws<ArgumentException>(() => GenerationSpeed.Measure(DecoderFixture.Cached, [new int[64]], new GenerationSpeedOptions { Threads = 1 }));
    }
}
