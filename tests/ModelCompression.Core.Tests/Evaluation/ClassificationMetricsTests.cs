using ModelCompression.Evaluation;

namespace ModelCompression.Core.Tests.Evaluation;

/// <summary>
/// Known predictions give known metrics. Expected values come from scikit-learn 1.2, scipy 1.10 and numpy 1.24
/// (reference.py beside this file prints every one of them) or are worked out by hand in the comments.
/// </summary>
public sealed class ClassificationMetricsTests
{
    private const double Tight = 1e-12;

    // Hand-sized case: 10 samples, 4 classes; class 3 is never predicted.
    private static readonly long[] Labels = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3];
    private static readonly int[] Predictions = [0, 0, 1, 1, 1, 2, 2, 0, 2, 2];

    // Logits case: 8 samples, 4 classes (float32, as models output them).
    private static readonly float[] TeacherLogits =
    [
        2.0f, 1.0f, 0.1f, -1.0f,
        0.5f, 2.5f, 0.3f, 0.0f,
        0.2f, 0.1f, 3.0f, 1.0f,
        1.5f, 1.4f, 1.3f, 1.2f,
        -1.0f, 0.0f, 1.0f, 2.0f,
        3.0f, -2.0f, 0.0f, 0.5f,
        0.0f, 0.0f, 4.0f, 0.0f,
        1.0f, 2.0f, 3.0f, 4.0f,
    ];

    private static readonly float[] StudentLogits =
    [
        1.0f, 1.0f, 0.0f, 0.0f,
        0.0f, 2.0f, 1.0f, 0.0f,
        0.0f, 0.0f, 2.0f, 2.0f,
        0.0f, 0.0f, 0.0f, 1.0f,
        3.0f, 0.0f, 0.0f, 0.0f,
        2.0f, -1.0f, 0.5f, 0.5f,
        0.0f, 1.0f, 0.0f, 0.0f,
        0.5f, 1.5f, 2.5f, 3.0f,
    ];

    private static readonly long[] LogitLabels = [0, 2, 2, 3, 0, 0, 1, 2];

    [Fact]
    public void Accuracy_confusion_matrix_and_per_class_match_scikit_learn()
    {
        Assert.Equal(0.7, ClassificationMetrics.Accuracy(Predictions, Labels), Tight);

        var confusion = ClassificationMetrics.ConfusionMatrix(Predictions, Labels, 4);
        int[][] expected = [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 3, 0], [0, 0, 1, 0]];
        Assert.Equal(expected, confusion);

        var perClass = ClassificationMetrics.PerClass(confusion);
        Assert.Equal([0, 1, 2, 3], perClass.Select(c => c.Class));
        Assert.Equal([3, 2, 4, 1], perClass.Select(c => c.Support));
        AssertClose([2.0 / 3, 2.0 / 3, 0.75, 0.0], perClass.Select(c => c.Precision));
        AssertClose([2.0 / 3, 1.0, 0.75, 0.0], perClass.Select(c => c.Recall));
        AssertClose([2.0 / 3, 0.8, 0.75, 0.0], perClass.Select(c => c.F1));
        // sklearn f1_score(average="macro", zero_division=0): (2/3 + 0.8 + 0.75 + 0) / 4.
        Assert.Equal(0.5541666666666667, ClassificationMetrics.MacroF1(confusion), Tight);
    }

    [Fact]
    public void A_class_that_is_neither_label_nor_prediction_does_not_lower_macro_F1()
    {
        var confusion = ClassificationMetrics.ConfusionMatrix(Predictions, Labels, 5);

        Assert.Equal(0.5541666666666667, ClassificationMetrics.MacroF1(confusion), Tight);
        Assert.Equal(new ClassMetrics(4, 0, 0, 0, 0), ClassificationMetrics.PerClass(confusion)[4]);
    }

    [Fact]
    public void Confusion_matrix_refuses_a_label_outside_the_classes()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ClassificationMetrics.ConfusionMatrix([0, 1], [0, 4], 4));
    }

    [Fact]
    public void Top_k_accuracy_matches_scikit_learn_and_top_1_is_accuracy()
    {
        var predictions = ClassificationMetrics.ArgMaxRows(TeacherLogits, 4);

        Assert.Equal([0, 1, 2, 0, 3, 0, 2, 3], predictions);
        Assert.Equal(0.375, ClassificationMetrics.TopKAccuracy(TeacherLogits, 4, LogitLabels, 1), Tight);
        Assert.Equal(ClassificationMetrics.Accuracy(predictions, LogitLabels), ClassificationMetrics.TopKAccuracy(TeacherLogits, 4, LogitLabels, 1), Tight);
        Assert.Equal(0.5, ClassificationMetrics.TopKAccuracy(TeacherLogits, 4, LogitLabels, 2), Tight);
        Assert.Equal(0.75, ClassificationMetrics.TopKAccuracy(TeacherLogits, 4, LogitLabels, 3), Tight);
        Assert.Equal(1.0, ClassificationMetrics.TopKAccuracy(TeacherLogits, 4, LogitLabels, 4), Tight);
    }

    [Fact]
    public void Top_k_breaks_ties_like_arg_max_toward_the_lower_class()
    {
        float[] tied = [1f, 1f, 1f];

        // Class 0 wins the tie (arg-max), class 2 is third.
        Assert.Equal(1.0, ClassificationMetrics.TopKAccuracy(tied, 3, [0], 1));
        Assert.Equal(0.0, ClassificationMetrics.TopKAccuracy(tied, 3, [2], 2));
        Assert.Equal(1.0, ClassificationMetrics.TopKAccuracy(tied, 3, [1], 2));
    }

    [Theory]
    [InlineData(1, null)]
    [InlineData(2, null)]
    [InlineData(3, 2)]
    [InlineData(6, 5)]
    [InlineData(10, 5)]
    [InlineData(1000, 5)]
    public void Top_k_is_min_of_5_and_classes_minus_1(int classes, int? k) => Assert.Equal(k, ClassificationMetrics.TopK(classes));

    [Fact]
    public void Agreement_counts_equal_arg_max()
    {
        var teacher = ClassificationMetrics.ArgMaxRows(TeacherLogits, 4);
        var student = ClassificationMetrics.ArgMaxRows(StudentLogits, 4);

        Assert.Equal(0.625, ClassificationMetrics.Agreement(student, teacher), Tight);
        Assert.Equal(1.0, ClassificationMetrics.Agreement(student, student), Tight);
    }

    [Fact]
    public void Mean_KL_matches_scipy_entropy()
    {
        // mean over rows of scipy.stats.entropy(softmax(teacher), softmax(student)).
        Assert.Equal(0.5520146063675963, ClassificationMetrics.MeanKlDivergence(TeacherLogits, StudentLogits, 4), 1e-12);
        Assert.Equal(0, ClassificationMetrics.MeanKlDivergence(TeacherLogits, TeacherLogits, 4), Tight);
    }

    [Fact]
    public void KL_by_hand_and_with_huge_logits()
    {
        // p = (1/2, 1/2), q = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3).
        Assert.Equal(0.5 * Math.Log(4.0 / 3), ClassificationMetrics.MeanKlDivergence([0f, 0f], [(float)Math.Log(3), 0f], 2), 1e-7);

        // A naive softmax overflows at exp(1000). p = (1, e^-1000), q = (e^-1000, 1): KL = 1000 (log p0 - log q0).
        Assert.Equal(0, ClassificationMetrics.MeanKlDivergence([1000f, 0f], [1000f, 0f], 2), Tight);
        Assert.Equal(1000, ClassificationMetrics.MeanKlDivergence([1000f, 0f], [0f, 1000f], 2), 1e-9);
    }

    [Fact]
    public void ECE_matches_the_numpy_reference()
    {
        Assert.Equal(0.35454195286606716, ClassificationMetrics.ExpectedCalibrationError(TeacherLogits, 4, LogitLabels), 1e-12);
        Assert.Equal(0.34900943283611213, ClassificationMetrics.ExpectedCalibrationError(StudentLogits, 4, LogitLabels), 1e-12);
    }

    [Fact]
    public void ECE_by_hand()
    {
        // Sample 1: confidence 0.5, right (bin (7/15, 8/15]); sample 2: confidence 0.75, wrong (bin (11/15, 12/15]).
        // ECE = 1/2 |1 - 0.5| + 1/2 |0 - 0.75| = 0.625.
        float[] logits = [0f, 0f, (float)Math.Log(3), 0f];

        Assert.Equal(0.625, ClassificationMetrics.ExpectedCalibrationError(logits, 2, [0, 1]), 1e-7);
        // Both in one bin (a single bin): |1/2 - (0.5 + 0.75) / 2| = 0.125.
        Assert.Equal(0.125, ClassificationMetrics.ExpectedCalibrationError(logits, 2, [0, 1], bins: 1), 1e-7);
    }

    [Fact]
    public void Log_softmax_is_stable_and_normalised()
    {
        var result = new double[3];
        ClassificationMetrics.LogSoftmax([1000f, 1000f, -1000f], result);

        Assert.Equal(-Math.Log(2), result[0], Tight);
        Assert.Equal(-Math.Log(2), result[1], Tight);
        Assert.Equal(-2000 - Math.Log(2), result[2], 1e-9);
    }

    [Fact]
    public void MAE_and_RMSE_match_scikit_learn()
    {
        // Errors 0, -1, 3: MAE 4/3, RMSE sqrt(10/3).
        Assert.Equal(1.3333333333333333, RegressionMetrics.MeanAbsoluteError([1, 2, 4], [1, 3, 1]), Tight);
        Assert.Equal(1.8257418583505538, RegressionMetrics.RootMeanSquaredError([1, 2, 4], [1, 3, 1]), Tight);
        Assert.Throws<ArgumentException>(() => RegressionMetrics.MeanAbsoluteError([1, 2], [1]));
    }

    [Fact]
    public void Mismatched_lengths_are_refused()
    {
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.Accuracy([0, 1], [0]));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.ArgMaxRows([1f, 2f, 3f], 2));
        Assert.Throws<ArgumentException>(() => ClassificationMetrics.MeanKlDivergence(TeacherLogits.AsSpan(0, 8), StudentLogits, 4));
    }

    private static void AssertClose(IEnumerable<double> expected, IEnumerable<double> actual)
    {
        Assert.Equal(expected.Count(), actual.Count());
        foreach (var (e, a) in expected.Zip(actual))
        {
            Assert.Equal(e, a, Tight);
        }
    }
}
