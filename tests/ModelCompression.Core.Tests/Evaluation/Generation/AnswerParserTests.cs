using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

public sealed class AnswerParserTests
{
    private static readonly MathAnswerParser Gsm8k = new();

    [Theory]
    [InlineData("7+4=11\n11-3=8\n#### 8", "8")]
    [InlineData("#### 1,234.50", "1234.5")]
    [InlineData("#### 1234.5", "1234.5")]
    [InlineData("#### -12", "-12")]
    [InlineData("#### +12", "12")]
    [InlineData("#### -0.0", "0")]
    [InlineData("#### 0.50", "0.5")]
    [InlineData("#### .5", "0.5")]
    [InlineData("#### 10.", "10")]
    [InlineData("####$18 dollars", "18")]
    [InlineData("#### 3\nwait, no\n#### 4", "4")]
    [InlineData("I think #### 5 is right", "5")]
    [InlineData("####   1,000,000", "1000000")]
    public void Gsm8k_takes_the_number_after_the_last_marker_normalised(string answer, string expected)
    {
        var parsed = Gsm8k.Parse(answer);
        Assert.True(parsed.Succeeded, $"'{answer}': {parsed.Failure}");
        Assert.Equal(expected, parsed.Value);
    }

    [Theory]
    [InlineData("The answer is 8.")]
    [InlineData("")]
    [InlineData("#### eight")]
    [InlineData("#### 8\n#### ")]
    [InlineData("### 8")]
    [InlineData("#### 1e5")]
    [InlineData("#### 10.5x")]
    [InlineData("#### 1,234abc")]
    public void Gsm8k_without_a_final_number_fails_and_says_so(string answer)
    {
        var parsed = Gsm8k.Parse(answer);
        Assert.Equal(ParsedAnswer.Failed(AnswerParseFailure.NoFinalNumber), parsed);
        Assert.Null(parsed.Value);
    }

    [Fact]
    public void A_pattern_takes_its_capture_group_of_the_last_match()
    {
        var parser = new MathAnswerParser(@"answer is\s*(-?[\d,.]+)");
        Assert.Equal("1234.5", parser.Parse("The answer is 3. No: the answer is 1,234.50").Value);
        Assert.Equal(AnswerParseFailure.NoFinalNumber, parser.Parse("#### 5").Failure);
        Assert.Equal(AnswerParseFailure.NoFinalNumber, parser.Parse("the answer is ...").Failure);

        var boxed = new MathAnswerParser(@"\\boxed\{(?<n>[^}]*)\}");
        Assert.Equal("42", boxed.Parse(@"so \boxed{42}").Value);
    }

    [Theory]
    [InlineData(@"answer (\d+) of (\d+)", "2 capture groups")]
    [InlineData(@"answer \d+", "0 capture groups")]
    [InlineData(@"answer (\d+", "not a valid regular expression")]
    public void A_pattern_needs_exactly_one_capture_group(string pattern, string problem)
    {
        Assert.Contains(problem, MathAnswerParser.CheckPattern(pattern), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new MathAnswerParser(pattern));
        Assert.Null(MathAnswerParser.CheckPattern(@"= (\d+)$"));
    }

    [Theory]
    [InlineData("1,234.50", "1234.5")]
    [InlineData("-0", "0")]
    [InlineData("007", "7")]
    [InlineData("12,3", "123")]
    [InlineData("1.2.3", null)]
    [InlineData("", null)]
    [InlineData("NaN", null)]
    [InlineData("99999999999999999999999999999999", null)]
    public void NormaliseNumber_makes_equal_values_equal_strings(string text, string? expected) =>
        Assert.Equal(expected, MathAnswerParser.NormaliseNumber(text));

    [Theory]
    [InlineData("entailment", "entailment")]
    [InlineData("  Neutral.\n", "neutral")]
    [InlineData("\"CONTRADICTION\"", "contradiction")]
    public void Label_answers_are_normalised_label_words(string answer, string expected) =>
        Assert.Equal(ParsedAnswer.Of(expected), new LabelAnswerParser().Parse(answer));

    [Theory]
    [InlineData("entailment, I think")]
    [InlineData("The answer is neutral")]
    [InlineData("entail")]
    [InlineData("")]
    [InlineData("yes")]
    public void Anything_but_a_label_word_is_not_a_label(string answer) =>
        Assert.Equal(AnswerParseFailure.NotALabel, new LabelAnswerParser().Parse(answer).Failure);

    [Fact]
    public void Label_words_are_configurable()
    {
        var parser = new LabelAnswerParser(["Yes", "No"]);
        Assert.Equal(new[] { "yes", "no" }, parser.Labels);
        Assert.Equal("no", parser.Parse("No.").Value);
        Assert.False(parser.Parse("entailment").Succeeded);
        Assert.Throws<ArgumentException>(() => new LabelAnswerParser(["yes"]));
        Assert.Throws<ArgumentException>(() => new LabelAnswerParser(["Yes", "yes."]));
    }

    [Fact]
    public void Text_answers_are_anything_not_blank_trimmed()
    {
        Assert.Equal(ParsedAnswer.Of("Paris"), TextAnswerParser.Instance.Parse("  Paris \n"));
        Assert.Equal(AnswerParseFailure.Empty, TextAnswerParser.Instance.Parse(" \n\t").Failure);
    }
}
