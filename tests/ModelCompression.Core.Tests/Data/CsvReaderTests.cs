using ModelCompression.Data;
using ModelCompression.Diagnostics;

namespace ModelCompression.Core.Tests.Data;

public sealed class CsvReaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Reads_features_and_a_named_label_column_with_their_lines()
    {
        var path = _dir.Write("iris.csv", DataRecipe.Csv(
            "sepal,species,petal",
            "5.1,0,1.4",
            "",
            "4.9,2,1.5e0",
            "\"6.0\",1,-2"));

        var table = CsvReader.Read(path, new CsvOptions(Label: "species"), labelled: true);

        Assert.Equal(["sepal", "petal"], table.FeatureNames);
        Assert.Equal([5.1f, 1.4f, 4.9f, 1.5f, 6.0f, -2f], table.Features);
        Assert.Equal((string[])["0", "2", "1"], table.Labels!.Values.Select(v => v ?? "(missing)"));
        Assert.Equal([2, 4, 5], table.Lines);
    }

    [Fact]
    public void Headerless_files_take_the_last_column_as_the_label_or_a_numbered_one()
    {
        var path = _dir.Write("plain.csv", DataRecipe.Csv("1,2,3", "4,5,6"));

        var last = CsvReader.Read(path, new CsvOptions(), labelled: true);
        var first = CsvReader.Read(path, new CsvOptions(Label: "0", Header: false, Ignore: ["1"]), labelled: true);

        Assert.Equal([1f, 2, 4, 5], last.Features);
        Assert.Equal((string[])["3", "6"], last.Labels!.Values.Select(v => v ?? "(missing)"));
        Assert.Equal([3f, 6], first.Features);
        Assert.Equal((string[])["1", "4"], first.Labels!.Values.Select(v => v ?? "(missing)"));
    }

    [Fact]
    public void Unlabelled_files_skip_a_label_column_when_there_is_one()
    {
        var withLabel = _dir.Write("with.csv", DataRecipe.Csv("a,b,label", "1,2,0"));
        var without = _dir.Write("without.csv", DataRecipe.Csv("a,b", "1,2"));
        var headerless = _dir.Write("headerless.csv", DataRecipe.Csv("1,2"));
        var headerlessWithLabel = _dir.Write("headerless-label.csv", DataRecipe.Csv("1,2,7"));

        Assert.Equal([1f, 2], CsvReader.Read(withLabel, new CsvOptions(), labelled: false).Features);
        Assert.Equal([1f, 2], CsvReader.Read(without, new CsvOptions(), labelled: false).Features);
        Assert.Equal([1f, 2], CsvReader.Read(headerless, new CsvOptions(), labelled: false, expectedFeatures: 2).Features);
        Assert.Equal([1f, 2], CsvReader.Read(headerlessWithLabel, new CsvOptions(), labelled: false, expectedFeatures: 2).Features);
        Assert.Null(CsvReader.Read(withLabel, new CsvOptions(), labelled: false).Labels);
    }

    [Fact]
    public void Every_bad_row_is_reported_at_once_with_file_and_line()
    {
        var path = _dir.Write("bad.csv", DataRecipe.Csv(
            "x,y,label",
            "1,2,0",
            "1,2",
            "1,abc,1",
            "1,2,",
            "NaN,2,1",
            "1,inf,0",
            "1,\"2,0",
            "3,4,1"));

        var e = Assert.Throws<CompressionException>(() => CsvReader.Read(path, new CsvOptions(), labelled: true));

        var d = Assert.Single(e.Diagnostics);
        Assert.Equal(DiagnosticCodes.DataBadRows, d.Code);
        Assert.Equal((path, 3), (d.File, d.Line));
        Assert.Contains("6 bad rows", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:3: 2 fields where the header has 3", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:4: 'abc' in column 'y' is not a number", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:5: the label (column 'label') is missing", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:6: column 'x' is NaN", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:7: column 'y' is inf", d.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:8: a quoted field is not closed on this line", d.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(":9:", d.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Many_bad_rows_show_twenty_and_count_the_rest()
    {
        var path = _dir.Write("many.csv", DataRecipe.Csv([.. Enumerable.Range(0, 50).Select(i => i % 2 == 0 ? "1,2,0" : "1,x,0")]));

        var e = Assert.Throws<CompressionException>(() => CsvReader.Read(path, new CsvOptions(Header: false), labelled: true));

        Assert.Contains("25 bad rows", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{path}:40:", e.Message, StringComparison.Ordinal); // the 20th bad row
        Assert.DoesNotContain($"{path}:42:", e.Message, StringComparison.Ordinal);
        Assert.Contains("and 5 more", e.Message, StringComparison.Ordinal);
        Assert.Equal(2, e.Diagnostics[0].Line);
    }

    [Fact]
    public void An_unknown_label_column_is_MC2020_listing_the_columns()
    {
        var path = _dir.Write("cols.csv", DataRecipe.Csv("a,b,c", "1,2,3"));

        var e = Assert.Throws<CompressionException>(() => CsvReader.Read(path, new CsvOptions(Label: "target"), labelled: true));

        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, e.Code);
        Assert.Contains("no label column 'target'. Columns: a, b, c", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Text_labels_become_sorted_class_names_recorded_in_the_description()
    {
        _dir.Write("train.csv", DataRecipe.Csv("f,label", "1,setosa", "2,virginica", "3,versicolor", "4,setosa"));
        _dir.Write("test.csv", DataRecipe.Csv("f,label", "5,virginica"));

        using var data = DataRecipe.Load(_dir, "train: train.csv\ntest: test.csv");

        Assert.Equal(["setosa", "versicolor", "virginica"], data.Description.LabelNames!);
        Assert.Equal([0L, 2, 1, 0], data.Train.Labels!);
        Assert.Equal([2L], data.Test.Labels!);
        Assert.Equal($"{_dir.File("train.csv")}:4", data.Train.LocateLabel(2));
    }

    [Fact]
    public void Classes_from_the_recipe_fix_the_order_and_reject_unknown_names()
    {
        _dir.Write("train.csv", DataRecipe.Csv("f,label", "1,spam", "2,ham"));
        _dir.Write("test.csv", DataRecipe.Csv("f,label", "5,ham", "6,eggs", "7,spam"));

        var e = Assert.Throws<CompressionException>(() => DataRecipe.Load(_dir, "train: train.csv\ntest: test.csv\nclasses: [spam, ham]"));
        using var data = DataRecipe.Load(_dir, "train: train.csv\ntest: train.csv\nclasses: [spam, ham]");

        Assert.Equal(DiagnosticCodes.DataBadRows, e.Code);
        Assert.Equal((_dir.File("test.csv"), 3), (e.Diagnostics[0].File, e.Diagnostics[0].Line));
        Assert.Contains("label 'eggs' is not one of the classes (spam, ham)", e.Message, StringComparison.Ordinal);
        Assert.Equal([0L, 1], data.Train.Labels!);
    }
}
