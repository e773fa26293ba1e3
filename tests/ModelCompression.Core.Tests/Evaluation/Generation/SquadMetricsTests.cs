using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

/// <summary>
/// SQuAD exact match and F1 as the official v1.1 evaluation script (evaluate-v1.1.py) defines them: normalize_answer
/// = lower, remove string.punctuation, replace \b(a|an|the)\b by a space, ' '.join(split()); f1 from the Counter
/// intersection of the token lists; metric_max_over_ground_truths over the gold answers. The Super Bowl answers are
/// the example of the SQuAD v1.1 dev set (question "If Roman numerals were used, what would Super Bowl 50 have been
/// called?", gold "Super Bowl L" and "L").
/// </summary>
public sealed class SquadMetricsTests
{
    [Theory]
    [InlineData("The  Denver Broncos!", "denver broncos")]
    [InlineData("an apple a day", "apple day")]
    [InlineData("Theory of the 'A-Team'", "theory of ateam")]
    [InlineData("  ", "")]
    [InlineData("anthem, then", "anthem then")]
    public void Normalize_as_the_official_script(string text, string normal) =>
        Assert.Equal(normal, SquadMetrics.Normalize(text));

    [Fact]
    public void Exact_match_is_after_normalisation_and_the_best_over_gold_answers()
    {
        string[] golds = ["Super Bowl L", "L"];
        Assert.Equal(1, SquadMetrics.ExactMatch("super bowl l.", golds));
        Assert.Equal(1, SquadMetrics.ExactMatch("The L", golds));
        Assert.Equal(0, SquadMetrics.ExactMatch("Super Bowl 50", golds));
    }

    [Fact]
    public void F1_counts_common_tokens_with_multiplicity()
    {
        // "super bowl 50" vs "super bowl l": 2 common, P = R = 2/3, F1 = 2/3; vs "l": 0. Best: 2/3.
        Assert.Equal(2.0 / 3, SquadMetrics.F1("Super Bowl 50", ["Super Bowl L", "L"]), 1e-12);

        // "denver broncos won" vs "the denver broncos": P 2/3, R 1, F1 0.8.
        Assert.Equal(0.8, SquadMetrics.F1("Denver Broncos won", ["the Denver Broncos"]), 1e-12);

        // "a a b" -> tokens [b] after article removal; "b b c": common 1, P 1, R 1/3, F1 0.5.
        Assert.Equal(0.5, SquadMetrics.F1("a a b", ["b b c"]), 1e-12);

        // Repeated tokens: "x x y" vs "x y y": common min(2,1) + min(1,2) = 2, P = R = 2/3.
        Assert.Equal(2.0 / 3, SquadMetrics.F1("x x y", ["x y y"]), 1e-12);
    }

    [Fact]
    public void No_common_token_is_zero_even_when_both_are_empty_as_in_v1_1()
    {
        Assert.Equal(0, SquadMetrics.F1("Paris", ["London"]));
        Assert.Equal(0, SquadMetrics.F1("the", ["a"]));
        Assert.Equal(1, SquadMetrics.ExactMatch("the", ["a"]));
        Assert.Throws<ArgumentException>(() => SquadMetrics.F1("x", []));
    }
}
