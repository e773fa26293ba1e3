using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation.Generation;

/// <summary>
/// ROUGE against Google's rouge-score package: its documented unit tests (rouge/rouge_scorer_test.py in
/// google-research/google-research: testRouge1, testRouge2, testRougeLConsecutive, testRougeLNonConsecutive,
/// testRougeEmpty) and its checks against ROUGE-1.5.5 on rouge/testdata/target.txt and prediction.txt (lines 0 and 1,
/// random strings, copied below as data; ROUGE-1.5.5's values are printed to 5 places, our exact fractions round to them).
/// rouge-score's <c>score(target, prediction)</c> takes the reference first; ours takes the prediction first.
/// </summary>
public sealed class RougeTests
{
    private const string Target0 = "ZfbCUIUuePaiLVUlCaUXxkpu XPeWing tUHfPMuZ',-Xd Y BrUgVJing M-HV.-DgdDaY.rFDJCRing Ht-LM EKBDXkME,yz'RBr q'wtion wIojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxer tKM L\n";
    private const string Prediction0 = "rFDJCRtion Ht-LM EKtDXkME,yz'RBr q'wer wrojNbN wL,b .a-'XdQggyFl jB-RPP'iyOIcUxi\n";
    private const string Target1 = "KsJdPByEtAor fE-Qg Dpdbring cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMtion psing sbKao Q m qiing LMmer HqqLFXe,XPY,J XsurkMer ,ed nB'wH'bWVHjWFEing tQ.saefZwJtKrTlixYpMMsJing UCAPwNHeYVjDing c T BUySKtion gMPfJpwGw p'NvxAoping eu pBwMBKV'I DNxqelhu,PHPxDEq,mtion SN\n";
    private const string Prediction1 = "n cw-WeFyu vC MoBL Xdn g wkvcEiGvKtion BDFhrpMer pstion sbKao Q m qier LMmed HqqLFXe,XPY,J XsurkMeo ,ed nB'wH'bWVHjWFEer tQ.saefZwJtKrTlixYpMMNJtion UCAPwNHeYVjD\n";

    [Fact]
    public void Tokenize_lower_cases_and_splits_on_everything_but_ascii_letters_and_digits()
    {
        Assert.Equal(new[] { "the", "quick", "brown", "fox", "s", "3rd", "jump", "caf" }, Rouge.Tokenize("The quick-brown FOX's 3rd  jump, café!"));
        Assert.Empty(Rouge.Tokenize(" /// "));
    }

    [Fact]
    public void Rouge1_of_the_package_example()
    {
        // testRouge1: score("testing one two", "testing") -> P 1, R 1/3, F 1/2.
        var r = Rouge.Score("testing", "testing one two").Rouge1;
        Assert.Equal((1.0, 1.0 / 3, 0.5), (r.Precision, r.Recall, r.FMeasure));
    }

    [Fact]
    public void Rouge2_and_rougeL_of_the_package_examples()
    {
        // testRouge2 / testRougeLConsecutive: "testing one" against "testing one two".
        var scores = Rouge.Score("testing one", "testing one two");
        Assert.Equal((1.0, 0.5), (scores.Rouge2.Precision, scores.Rouge2.Recall));
        Assert.Equal(2.0 / 3, scores.Rouge2.FMeasure, 1e-12);
        Assert.Equal((1.0, 2.0 / 3), (scores.RougeL.Precision, scores.RougeL.Recall));
        Assert.Equal(0.8, scores.RougeL.FMeasure, 1e-12);

        // testRougeLNonConsecutive: a subsequence need not be contiguous.
        var gap = Rouge.Score("testing two", "testing one two").RougeL;
        Assert.Equal((1.0, 2.0 / 3), (gap.Precision, gap.Recall));
        Assert.Equal(0.8, gap.FMeasure, 1e-12);
    }

    [Fact]
    public void An_empty_side_scores_zero()
    {
        // testRougeEmpty, and a prediction of punctuation only (no tokens).
        foreach (var (prediction, reference) in new[] { (string.Empty, "testing one two"), ("/", "testing one two"), ("testing", string.Empty) })
        {
            var s = Rouge.Score(prediction, reference);
            Assert.Equal(default, s.Rouge1);
            Assert.Equal(default, s.Rouge2);
            Assert.Equal(default, s.RougeL);
        }
    }

    [Fact]
    public void Matches_rouge_155_on_the_package_test_data()
    {
        var first = Rouge.Score(Prediction0, Target0);
        Expect(first.Rouge1, 11, 16, 27, 0.68750, 0.40741, 0.51163);
        Expect(first.Rouge2, 8, 15, 26, 0.53333, 0.30769, 0.39024);
        Expect(first.RougeL, 11, 16, 27, 0.68750, 0.40741, 0.51163);

        var second = Rouge.Score(Prediction1, Target1);
        Expect(second.Rouge1, 17, 26, 42, 0.65385, 0.40476, 0.50000);
        Expect(second.Rouge2, 12, 25, 41, 0.48000, 0.29268, 0.36364);
        Expect(second.RougeL, 17, 26, 42, 0.65385, 0.40476, 0.50000);
    }

    [Fact]
    public void Ngram_matches_are_clipped_to_the_smaller_count()
    {
        // "the the the" vs "the cat": one "the" matches, not three (Lin 2004, Count_match).
        var r = Rouge.Score("the the the", "the cat").Rouge1;
        Assert.Equal((1.0 / 3, 0.5), (r.Precision, r.Recall));
        Assert.Equal(0.4, r.FMeasure, 1e-12);
        var reverse = Rouge.Score("the cat", "the the the").Rouge1;
        Assert.Equal((0.5, 1.0 / 3), (reverse.Precision, reverse.Recall));

        // LCS of "a b c d e" and "b e a d" is 2 ("b d" or "b e" or "a d").
        var l = Rouge.Score("b e a d", "a b c d e").RougeL;
        Assert.Equal((0.5, 0.4), (l.Precision, l.Recall));
    }

    private static void Expect(RougeScore score, int matches, int predicted, int reference, double p155, double r155, double f155)
    {
        var precision = (double)matches / predicted;
        var recall = (double)matches / reference;
        Assert.Equal(precision, score.Precision, 1e-12);
        Assert.Equal(recall, score.Recall, 1e-12);
        Assert.Equal(2 * precision * recall / (precision + recall), score.FMeasure, 1e-12);
        Assert.Equal((p155, r155, f155), (Math.Round(score.Precision, 5), Math.Round(score.Recall, 5), Math.Round(score.FMeasure, 5)));
    }
}
