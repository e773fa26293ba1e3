using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;

namespace ModelCompression.Core.Tests.Data;

public sealed class DataLoaderTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>100 rows "i, 2i, label" with labels 0..3, written to all.csv.</summary>
    private void WriteAll(string name = "all.csv", int rows = 100) =>
        _dir.Write(name, DataRecipe.Csv([.. new[] { "a,b,label" }.Concat(Enumerable.Range(0, rows).Select(i => $"{i},{2 * i},{i % 4}"))]));

    [Fact]
    public void Fashion_mnist_idx_with_a_labelled_slice_and_an_unlabelled_pool_carved_from_train()
    {
        var data = $"""
            format: idx
            train: {"{"} inputs: {Repo.SampleData("t10k-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("t10k-labels-idx1-ubyte.gz")} {"}"}
            test: {"{"} inputs: {Repo.SampleData("t10k-images-idx3-ubyte.gz")}, labels: {Repo.SampleData("t10k-labels-idx1-ubyte.gz")} {"}"}
            split: {"{"} unlabelled: 0.8, validation: 100, seed: 1 {"}"}
            scale: 0.00392156862745098
            """;

        using var loaded = DataRecipe.Load(_dir, data);

        var all = IdxReader.Read(Repo.SampleData("t10k-images-idx3-ubyte.gz"));
        var total = all.Dimensions[0];
        Assert.Equal(total, loaded.Train.Count + loaded.Validation!.Count + loaded.Unlabelled!.Count);
        Assert.Equal(100, loaded.Validation.Count);
        Assert.Equal((int)Math.Round(total * 0.8), loaded.Unlabelled.Count);
        Assert.Null(loaded.Unlabelled.Labels);
        Assert.NotNull(loaded.Validation.Labels);
        Assert.Equal([28L, 28], loaded.Train.SampleShape);
        // Pixels are scaled as they are read, and every split reads the same file rows it names.
        var first = new float[784];
        loaded.Unlabelled.Tensors[0].CopyRange(0, 1, first);
        var row = int.Parse(loaded.Unlabelled.Locate(0).Split(" row ")[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(all.Data.AsSpan(row * 784, 784).ToArray().Select(b => b * (float)0.00392156862745098), first);
        Assert.Equal(total, new[] { loaded.Train, loaded.Validation, loaded.Unlabelled }.SelectMany(d => Enumerable.Range(0, d.Count).Select(d.Locate)).Distinct().Count());
    }

    [Fact]
    public void One_file_split_by_ratio_is_seeded_disjoint_and_complete()
    {
        WriteAll();
        const string Section = "file: all.csv\nsplit: { test: 0.2, validation: 0.1, seed: 7 }";

        using var first = DataRecipe.Load(_dir, Section);
        using var again = DataRecipe.Load(_dir, Section);
        using var reseeded = DataRecipe.Load(_dir, Section.Replace("seed: 7", "seed: 8", StringComparison.Ordinal));

        Assert.Equal((70, 20, 10), (first.Train.Count, first.Test.Count, first.Validation!.Count));
        string[] Rows(LoadedData d) => [.. d.Splits().SelectMany(s => Enumerable.Range(0, s.Data.Count).Select(i => $"{s.Name}:{s.Data.Locate(i)}"))];
        Assert.Equal(Rows(first), Rows(again));
        Assert.NotEqual(Rows(first), Rows(reseeded));
        var lines = first.Splits().SelectMany(s => Enumerable.Range(0, s.Data.Count).Select(s.Data.Locate)).ToList();
        Assert.Equal(100, lines.Distinct().Count());
        // Each part keeps the file's order, and labels travel with their rows.
        var features = DataRecipe.Floats(first.Test.Tensors[0]);
        for (var i = 0; i < first.Test.Count; i++)
        {
            var a = (int)features[2 * i];
            Assert.Equal($"{_dir.File("all.csv")}:{a + 2}", first.Test.Locate(i));
            Assert.Equal(a % 4, first.Test.Labels![i]);
            Assert.True(i == 0 || features[2 * i] > features[2 * (i - 1)]);
        }
    }

    [Fact]
    public void An_unlabelled_file_is_a_first_class_split_and_labels_in_it_are_ignored()
    {
        WriteAll("train.csv", 12);
        WriteAll("test.csv", 8);
        _dir.Write("pool.csv", DataRecipe.Csv("1,2", "3,4", "5,6"));
        _dir.Write("pool-labelled.csv", DataRecipe.Csv("a,b,label", "1,2,0", "3,4,"));

        using var plain = DataRecipe.Load(_dir, "train: train.csv\ntest: test.csv\nunlabelled: pool.csv");
        using var labelled = DataRecipe.Load(_dir, "train: train.csv\ntest: test.csv\nunlabelled: { inputs: pool-labelled.csv }");

        Assert.Equal(3, plain.Unlabelled!.Count);
        Assert.Null(plain.Unlabelled.Labels);
        Assert.Equal([1f, 2, 3, 4, 5, 6], DataRecipe.Floats(plain.Unlabelled.Tensors[0]));
        Assert.Equal(2, labelled.Unlabelled!.Count); // the missing label of line 3 does not matter here
        Assert.Null(labelled.Unlabelled.Labels);
    }

    [Fact]
    public void Normalize_auto_computes_per_feature_statistics_on_the_training_split_only()
    {
        _dir.Write("train.csv", DataRecipe.Csv("a,b,label", "0,10,0", "2,10,1", "4,10,0"));
        _dir.Write("test.csv", DataRecipe.Csv("a,b,label", "2,12,1"));

        using var data = DataRecipe.Load(_dir, "train: train.csv\ntest: test.csv\nscale: 0.5\nnormalize: auto");

        // Scaled a: 0, 1, 2 -> mean 1, std sqrt(2/3); b: 5, 5, 5 -> mean 5, std 0 taken as 1 (only centred).
        var std = MathF.Sqrt(2f / 3f);
        var transform = data.Description.Transforms["input"];
        Assert.Equal(0.5f, transform.Scale);
        Assert.Equal([1f, 5f], transform.Mean!);
        Assert.Equal(std, transform.Std![0], 1e-6f);
        Assert.Equal(1f, transform.Std[1]);
        var train = DataRecipe.Floats(data.Train.Tensors[0]);
        Assert.Equal([-1 / std, 0, 0, 0, 1 / std, 0], train, new FloatTolerance(1e-5f));
        // The test split uses the training statistics, not its own.
        Assert.Equal([0f, 1f], DataRecipe.Floats(data.Test.Tensors[0]), new FloatTolerance(1e-5f));
    }

    [Fact]
    public void Normalize_global_and_fixed_values()
    {
        _dir.Write("train.csv", DataRecipe.Csv("a,b,label", "0,2,0", "4,6,1"));

        using var global = DataRecipe.Load(_dir, "train: train.csv\ntest: train.csv\nnormalize: global");
        using var given = DataRecipe.Load(_dir, "train: train.csv\ntest: train.csv\nnormalize: { mean: [1, 2], std: 2 }");

        // Global: all four values 0, 2, 4, 6 -> mean 3, std sqrt(5).
        Assert.Equal([(0 - 3) / MathF.Sqrt(5), (2 - 3) / MathF.Sqrt(5), (4 - 3) / MathF.Sqrt(5), (6 - 3) / MathF.Sqrt(5)], DataRecipe.Floats(global.Train.Tensors[0]), new FloatTolerance(1e-5f));
        var e = Assert.Throws<CompressionException>(() => DataRecipe.Load(_dir, "train: train.csv\ntest: train.csv\nnormalize: { mean: [1, 2, 3], std: [1, 1, 1] }"));
        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, e.Code);
        Assert.Contains("3 means and 3 stds for tensor 'input' with samples of 2 values", e.Message, StringComparison.Ordinal);
        Assert.Equal([-0.5f, 0f, 1.5f, 2f], DataRecipe.Floats(given.Train.Tensors[0]));
    }

    [Fact]
    public void Npy_inputs_with_named_tensors_and_nan_rows_reported_by_row()
    {
        File.Copy(Fixtures.Npy("nan.npy"), _dir.File("nan.npy"));
        File.Copy(Fixtures.Npy("labels.npy"), _dir.File("labels.npy"));
        Npy.WriteLongs(_dir.File("labels4.npy"), [0, 1, 0, 1], 4);
        Npy.WriteLongs(_dir.File("ids.npy"), [.. Enumerable.Range(0, 10)], 5, 2);
        Npy.WriteLongs(_dir.File("mask.npy"), [1, 1, 1, 0, 1, 1, 1, 1, 1, 0], 5, 2);

        var e = Assert.Throws<CompressionException>(() => DataRecipe.Load(_dir, "train: { inputs: nan.npy, labels: labels4.npy }\ntest: { inputs: nan.npy, labels: labels4.npy }"));
        using var named = DataRecipe.Load(_dir, "train: { inputs: { input_ids: ids.npy, attention_mask: mask.npy }, labels: labels.npy }\ntest: { inputs: { input_ids: ids.npy, attention_mask: mask.npy }, labels: labels.npy }");

        Assert.Equal((DiagnosticCodes.DataBadRows, _dir.File("nan.npy")), (e.Code, e.Diagnostics[0].File));
        Assert.Contains($"{_dir.File("nan.npy")} row 1: value 2 of 'input' is NaN", e.Message, StringComparison.Ordinal);
        Assert.Contains($"{_dir.File("nan.npy")} row 3: value 0 of 'input' is ∞", e.Message.Replace("Infinity", "∞", StringComparison.Ordinal), StringComparison.Ordinal);
        Assert.Equal(["input_ids int64 [2]", "attention_mask int64 [2]"], named.Train.Tensors.Select(t => t.Describe()));
        Assert.Equal([0L, 2, 1, 1, 0], named.Train.Labels!);
    }

    [Fact]
    public void Splits_that_disagree_and_label_count_mismatches_are_MC2020()
    {
        WriteAll("train.csv", 10);
        _dir.Write("test.csv", DataRecipe.Csv("a,b,c,label", "1,2,3,0"));
        Npy.WriteFloats(_dir.File("x.npy"), new float[6], 3, 2);
        Npy.WriteLongs(_dir.File("y.npy"), [0, 1], 2);

        var columns = Assert.Throws<CompressionException>(() => DataRecipe.Load(_dir, "train: train.csv\ntest: test.csv"));
        var count = Assert.Throws<CompressionException>(() => DataRecipe.Load(_dir, "train: { inputs: x.npy, labels: y.npy }\ntest: { inputs: x.npy, labels: y.npy }"));

        Assert.Equal(DiagnosticCodes.DataSchemaMismatch, columns.Code);
        Assert.Contains("test: input float32 [3]; train: input float32 [2]", columns.Message, StringComparison.Ordinal);
        Assert.Equal((DiagnosticCodes.DataSchemaMismatch, _dir.File("y.npy")), (count.Code, count.Diagnostics[0].File));
        Assert.Contains("hold 2 values but the inputs", count.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_data_option_and_file_content_changes_the_data_hash_but_the_folder_does_not()
    {
        WriteAll();
        const string Base = "file: all.csv\nsplit: { test: 0.2, seed: 7 }";
        var hash = HashOf(Base);

        Assert.Equal(hash, HashOf(Base));
        foreach (var variant in new[]
        {
            Base.Replace("seed: 7", "seed: 8", StringComparison.Ordinal),
            Base.Replace("test: 0.2", "test: 0.3", StringComparison.Ordinal),
            Base + "\nscale: 0.5",
            Base + "\nnormalize: auto",
            Base + "\nnormalize: global",
            Base + "\ncsv: { label: b }",
            Base + "\ncsv: { ignore: [a] }",
            Base + "\nclasses: ['0', '1', '2', '3']",
        })
        {
            Assert.NotEqual(hash, HashOf(variant));
        }

        File.AppendAllText(_dir.File("all.csv"), "100,200,0\n");
        Assert.NotEqual(hash, HashOf(Base));

        // The same files in another folder: the same data.
        var other = new TempDir();
        try
        {
            File.Copy(_dir.File("all.csv"), other.File("all.csv"));
            Assert.Equal(HashOf(Base), DataHashing.HashData(DataRecipe.Spec(other, Base)));
        }
        finally
        {
            other.Dispose();
        }
    }

    [Fact]
    public void Text_options_change_the_data_hash()
    {
        File.Copy(Fixtures.Text("spam.jsonl"), _dir.File("spam.jsonl"));
        const string Base = "file: spam.jsonl\nsplit: { test: 0.2 }\ntext: { tokenizer: cl100k_base, max_length: 32 }";

        var hash = HashOf(Base);

        Assert.NotEqual(hash, HashOf(Base.Replace("32", "33", StringComparison.Ordinal)));
        Assert.NotEqual(hash, HashOf(Base.Replace("cl100k_base", "o200k_base", StringComparison.Ordinal)));
        Assert.NotEqual(hash, HashOf(Base.Replace("32 }", "32, compact_vocabulary: true }", StringComparison.Ordinal)));
        Assert.NotEqual(hash, HashOf(Base.Replace("32 }", "32, pad_id: 5 }", StringComparison.Ordinal)));
        Assert.NotEqual(hash, HashOf(Base.Replace("32 }", "32, mask: false }", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("file: all.csv\nsplit: { validation: 0.1 }", DiagnosticCodes.RecipeMissingKey, 3)]
    [InlineData("file: all.csv", DiagnosticCodes.RecipeMissingKey, 2)]
    [InlineData("file: all.csv\nsplit: { test: 0.6, validation: 0.5 }", DiagnosticCodes.RecipeInvalidValue, 3)]
    [InlineData("file: all.csv\nsplit: { test: 2.5 }", DiagnosticCodes.RecipeInvalidValue, 3)]
    [InlineData("train: all.csv\ntest: all.csv\nsplit: { test: 0.2 }", DiagnosticCodes.RecipeInvalidValue, 3)]
    [InlineData("train: all.csv", DiagnosticCodes.RecipeMissingKey, 2)]
    [InlineData("format: parquet\ntrain: all.csv\ntest: all.csv", DiagnosticCodes.RecipeInvalidValue, 2)]
    [InlineData("train: all.txt\ntest: all.txt", DiagnosticCodes.RecipeMissingKey, 2)]
    [InlineData("train: all.csv\ntest: all.csv\nnormalize: sometimes", DiagnosticCodes.RecipeInvalidValue, 4)]
    [InlineData("train: all.csv\ntest: all.csv\nnormalize: { mean: 1 }", DiagnosticCodes.RecipeMissingKey, 4)]
    [InlineData("train: all.csv\ntest: all.csv\nnormalize: { mean: 1, std: 0 }", DiagnosticCodes.RecipeInvalidValue, 4)]
    [InlineData("train: all.csv\ntest: all.csv\ncsv: { delimiter: ';;' }", DiagnosticCodes.RecipeInvalidValue, 4)]
    [InlineData("train: all.csv\ntest: all.csv\nnpz: { labels: y }", DiagnosticCodes.RecipeInvalidValue, 4)]
    [InlineData("train: all.csv\ntest: all.csv\ntext: { tokenizer: cl100k_base }", DiagnosticCodes.RecipeInvalidValue, 4)]
    [InlineData("train: all.csv\ntest: { inputs: all.csv, labels: all.csv }", DiagnosticCodes.RecipeUnknownKey, 3)]
    [InlineData("format: npy\ntrain: all.npy\ntest: all.npy", DiagnosticCodes.RecipeInvalidValue, 3)]
    [InlineData("train: all.csv\ntest: all.csv\nclasses: [a, a]", DiagnosticCodes.RecipeInvalidValue, 4)]
    [InlineData("train: all.csv\ntest: all.csv\nshuffle: true", DiagnosticCodes.RecipeUnknownKey, 4)]
    public void Data_section_mistakes_carry_their_code_and_line(string section, string code, int line)
    {
        WriteAll();
        File.WriteAllText(_dir.File("all.txt"), "x");
        File.WriteAllText(_dir.File("all.npy"), "x");

        var e = Assert.Throws<CompressionException>(() => DataRecipe.Spec(_dir, section));

        Assert.Contains(e.Diagnostics, d => d.Code == code && d.Line == line && d.File == _dir.File("data.compress.yaml"));
    }

    private string HashOf(string section) => DataHashing.HashData(DataRecipe.Spec(_dir, section));

    private sealed class FloatTolerance(float tolerance) : IEqualityComparer<float>
    {
        public bool Equals(float x, float y) => MathF.Abs(x - y) <= tolerance;

        public int GetHashCode(float obj) => 0;
    }
}
