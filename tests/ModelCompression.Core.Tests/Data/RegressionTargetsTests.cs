using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Data;

/// <summary>Float targets (task: regression) from the readers that carry them; classification's labels stay integers.</summary>
public sealed class RegressionTargetsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private LoadedData Load(string dataSection, LabelKind kind) => DataLoader.Load(DataRecipe.Spec(_dir, dataSection), kind);

    [Fact]
    public void Csv_label_columns_are_read_as_real_numbers_and_carried_through_splits()
    {
        _dir.Write("all.csv", DataRecipe.Csv("a,b,y", "1,2,0.5", "3,4,-1.25", "5,6,1e2", "7,8,151", "9,10,3.75"));

        using var data = Load("file: all.csv\ncsv: { label: y }\nsplit: { test: 2, seed: 1 }", LabelKind.Values);

        Assert.Null(data.Train.Labels);
        Assert.True(data.Train.IsLabelled);
        float[] all = [0.5f, -1.25f, 100f, 151f, 3.75f];
        Assert.Equal(3, data.Train.Targets!.Length);
        Assert.Equal(2, data.Test.Targets!.Length);
        // Every sample keeps its own target through the split: the first feature identifies the row.
        foreach (var split in new[] { data.Train, data.Test })
        {
            var a = DataRecipe.Floats(split.Tensors[0]).Where((_, i) => i % 2 == 0).ToArray();
            Assert.Equal([.. a.Select(v => all[(int)(v - 1) / 2])], split.Targets!);
        }
    }

    [Fact]
    public void A_target_that_is_not_a_number_is_reported_with_its_file_and_line()
    {
        _dir.Write("bad.csv", DataRecipe.Csv("a,y", "1,0.5", "2,high", "3,NaN"));

        var e = Assert.Throws<CompressionException>(() => Load("file: bad.csv\ncsv: { label: y }\nsplit: { test: 1, seed: 1 }", LabelKind.Values));

        Assert.Equal(DiagnosticCodes.DataBadRows, e.Code);
        Assert.Contains($"{_dir.File("bad.csv")}:3: target 'high' is not a finite number", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{_dir.File("bad.csv")}:4: target 'NaN' is not a finite number", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Npy_targets_may_be_fractional_while_class_labels_may_not()
    {
        Npy.WriteFloats(_dir.File("x.npy"), [1, 2, 3, 4, 5, 6], 3, 2);
        Npy.WriteFloats(_dir.File("y.npy"), [0.25f, 7.5f, -2f], 3);
        const string Section = "train: { inputs: x.npy, labels: y.npy }\ntest: { inputs: x.npy, labels: y.npy }";

        using var data = Load(Section, LabelKind.Values);
        var classes = Assert.Throws<CompressionException>(() => Load(Section, LabelKind.Classes));

        Assert.Equal([0.25f, 7.5f, -2f], data.Test.Targets!);
        Assert.Null(data.Test.Labels);
        Assert.Contains("label 0.25 is not a whole number", classes.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Npy_targets_must_be_finite_and_one_per_sample()
    {
        Npy.WriteFloats(_dir.File("x.npy"), [1, 2, 3, 4, 5, 6], 3, 2);
        Npy.WriteFloats(_dir.File("nan.npy"), [0.25f, float.NaN, 1f], 3);
        Npy.WriteFloats(_dir.File("wide.npy"), [1, 2, 3, 4, 5, 6], 3, 2);

        var nan = Assert.Throws<CompressionException>(() => Load("train: { inputs: x.npy, labels: nan.npy }\ntest: { inputs: x.npy, labels: nan.npy }", LabelKind.Values));
        var wide = Assert.Throws<CompressionException>(() => Load("train: { inputs: x.npy, labels: wide.npy }\ntest: { inputs: x.npy, labels: wide.npy }", LabelKind.Values));

        Assert.Equal((DiagnosticCodes.DataBadRows, _dir.File("nan.npy")), (nan.Code, nan.Diagnostics[0].File));
        Assert.Contains("row 1: target NaN is not a finite number", nan.Message, StringComparison.Ordinal);
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, wide.Code);
        Assert.Contains("regression targets are one number per sample", wide.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Jsonl_number_labels_are_targets_for_regression_and_still_need_to_be_whole_for_classification()
    {
        _dir.Write("t.jsonl", "{\"text\": \"good\", \"label\": 4.5}\n{\"text\": \"bad\", \"label\": -1}\n{\"text\": \"fine\", \"label\": \"2.25\"}\n{\"text\": \"ok\", \"label\": 3}\n");
        const string Section = "file: t.jsonl\nsplit: { test: 1, seed: 1 }\ntext: { tokenizer: cl100k_base, max_length: 4, compact_vocabulary: false }";

        using var data = Load(Section, LabelKind.Values);
        var classes = Assert.Throws<CompressionException>(() => Load(Section, LabelKind.Classes));

        Assert.Equal(new[] { 4.5f, -1f, 2.25f, 3f }.Order(), data.Train.Targets!.Concat(data.Test.Targets!).Order());
        Assert.Contains($"{_dir.File("t.jsonl")}:1: label \"label\" is 4.5; a class number or a class name is needed", classes.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Classification_still_reads_integer_labels_as_before()
    {
        _dir.Write("all.csv", DataRecipe.Csv("a,b,label", "1,2,0", "3,4,1", "5,6,2", "7,8,1"));

        using var data = Load("file: all.csv\nsplit: { test: 1, seed: 1 }", LabelKind.Classes);

        Assert.Null(data.Train.Targets);
        Assert.Equal(3, data.Train.Labels!.Length);
        Assert.All(data.Train.Labels, l => Assert.InRange(l, 0, 2));
    }

    [Fact]
    public void Views_keep_the_targets_of_their_samples_and_an_unlabelled_view_has_none()
    {
        _dir.Write("all.csv", DataRecipe.Csv("a,y", "1,0.5", "2,1.5", "3,2.5", "4,3.5"));
        using var data = Load("file: all.csv\ncsv: { label: y }\nsplit: { test: 1, seed: 1 }", LabelKind.Values);

        var picked = data.Train.Select([2, 0], "picked");

        Assert.Equal([data.Train.Targets![2], data.Train.Targets[0]], picked.Targets!);
        Assert.Null(picked.WithoutLabels("pool").Targets);
        Assert.False(picked.WithoutLabels("pool").IsLabelled);
    }
}
