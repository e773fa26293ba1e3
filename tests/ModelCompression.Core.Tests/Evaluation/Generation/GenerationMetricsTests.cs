using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

public sealed class GenerationMetricsTests
{
    [Fact]
    public void Math_exact_match_compares_parsed_final_answers_and_counts_parse_failures()
    {
        string[] golds = ["3+4=7\n#### 7", "#### 1,234.50", "#### -2", "#### 10", "#### 5"];
        string[] predictions = ["7-0=7\n#### 7.0", "#### 1234.5", "#### 2", "ten", "#### "];

        var scores = GenerationMetrics.Correctness(predictions, golds, new MathAnswerParser());

        Assert.Equal(new[] { true, true, false, false, false }, scores.Correct);
        Assert.Equal(0.4, scores.Accuracy, 1e-12);
        Assert.Equal(2, scores.ParseFailureCount);
        Assert.Equal(2, scores.ParseFailures[AnswerParseFailure.NoFinalNumber]);
    }

    [Fact]
    public void Nli_accuracy_is_over_label_words()
    {
        var scores = GenerationMetrics.Correctness(
            ["Entailment.", "neutral", "contradiction because", "neutral"],
            ["entailment", "contradiction", "contradiction", "neutral"],
            new LabelAnswerParser());

        Assert.Equal(new[] { true, false, false, true }, scores.Correct);
        Assert.Equal(1, scores.ParseFailures[AnswerParseFailure.NotALabel]);
    }

    [Fact]
    public void A_gold_answer_that_fails_the_parser_is_bad_data_MC2095()
    {
        var e = Assert.Throws<CompressionException>(() =>
            GenerationMetrics.Correctness(["#### 1", "#### 2"], ["#### 1", "two"], new MathAnswerParser()));
        Assert.Equal(DiagnosticCodes.GoldAnswerUnparsable, e.Code);
        Assert.Contains("Gold answer 1", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => GenerationMetrics.Correctness(["#### 1"], [], new MathAnswerParser()));
    }

    [Fact]
    public void Bad_gold_answers_are_reported_together_with_file_and_line()
    {
        string[] golds = ["#### 4", "four", "#### 5", ""];

        var problems = GenerationMetrics.GoldAnswerProblems(golds, new MathAnswerParser(), "data/test.jsonl");
        var shifted = GenerationMetrics.GoldAnswerProblems(golds, new MathAnswerParser(), "data/test.jsonl", i => (2 * i) + 10);

        Assert.Equal(new[] { 2, 4 }, problems.Select(p => p.Line!.Value));
        Assert.All(problems, p => Assert.Equal((DiagnosticCodes.GoldAnswerUnparsable, "data/test.jsonl"), (p.Code, p.File)));
        Assert.Contains("NoFinalNumber", problems[0].Message, StringComparison.Ordinal);
        Assert.Equal(new[] { 12, 16 }, shifted.Select(p => p.Line!.Value));
        Assert.Empty(GenerationMetrics.GoldAnswerProblems(["entailment", "Neutral."], new LabelAnswerParser()));
        Assert.Null(GenerationMetrics.GoldAnswerProblems(["x"], new LabelAnswerParser()).Single().Line);
    }

    [Fact]
    public void Squad_and_rouge_summaries_average_the_per_sample_scores()
    {
        var squad = GenerationMetrics.Squad(["Denver Broncos won", "", "Paris"], [["the Denver Broncos"], ["x"], ["Paris", "paris france"]]);
        Assert.Equal(new[] { 0.0, 0.0, 1.0 }, squad.ExactMatch);
        Assert.Equal(new[] { 0.8, 0.0, 1.0 }, squad.F1);
        Assert.Equal(1, squad.EmptyAnswers);
        Assert.Equal(0.6, squad.MeanF1, 1e-12);

        var rouge = GenerationMetrics.Rouge(["testing one", "testing"], ["testing one two", "testing one two"]);
        // ROUGE-L and ROUGE-1 of "testing one" are 0.8 (rouge-score's testRougeLConsecutive); of "testing", 2 * 1 * 1/3 / (4/3) = 0.5.
        Assert.Equal(0.65, rouge.RougeL, 1e-12);
        Assert.Equal(0.65, rouge.Rouge1, 1e-12);
        Assert.Equal(1.0 / 3, rouge.Rouge2, 1e-12); // 2/3 and 0 (a single token has no bigram)
        Assert.Equal(new[] { 0.8, 0.5 }, rouge.RougeLPerSample().Select(v => Math.Round(v, 12)));
    }

    [Fact]
    public void Perplexity_is_exp_of_the_mean_negative_log_likelihood_over_all_tokens()
    {
        // Four tokens of probability 1/2 and four of 1/8 (one sequence each side): mean NLL = (4 ln 2 + 4 ln 8) / 8 = 2 ln 2.
        double[] halves = [.. Enumerable.Repeat(Math.Log(0.5), 4)];
        double[] eighths = [.. Enumerable.Repeat(Math.Log(0.125), 4)];
        Assert.Equal(4.0, GenerationStatistics.Perplexity([halves, eighths, []]), 1e-12);

        // Pooled over tokens, not averaged over sequences: one token of 1/8 and three of 1/2 give exp((ln 8 + 3 ln 2) / 4) = 2^1.5.
        Assert.Equal(Math.Pow(2, 1.5), GenerationStatistics.Perplexity([[Math.Log(0.125)], [Math.Log(0.5), Math.Log(0.5), Math.Log(0.5)]]), 1e-12);
        Assert.Equal(1.0, GenerationStatistics.Perplexity([[0.0]]));
        Assert.Throws<ArgumentException>(() => GenerationStatistics.Perplexity([[0.1]]));
        Assert.Throws<ArgumentException>(() => GenerationStatistics.Perplexity([[double.NaN]]));
        Assert.Throws<ArgumentException>(() => GenerationStatistics.Perplexity([[]]));
    }

    [Fact]
    public void McNemar_on_correctness_counts_discordant_samples()
    {
        bool[] baseline = [true, true, false, false, true, false, false, false];
        bool[] candidate = [true, false, true, true, true, true, true, true];

        var result = GenerationStatistics.McNemar(baseline, candidate);

        // Baseline-only right: sample 1; candidate-only: 2, 3, 5, 6, 7. p = 2 * (1 + 6) / 64.
        Assert.Equal((1, 5), (result.BaselineOnlyCorrect, result.CandidateOnlyCorrect));
        Assert.Equal(0.21875, result.PValue, 1e-12);
        Assert.Equal(PairedWinner.Candidate, result.Better);
        Assert.Throws<ArgumentException>(() => GenerationStatistics.McNemar(baseline, candidate[1..]));
    }
}
