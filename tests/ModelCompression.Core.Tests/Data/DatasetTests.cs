using ModelCompression.Data;

namespace ModelCompression.Core.Tests.Data;

public sealed class DatasetTests
{
    private static Dataset Numbered(int count) => new(
        [DataTensor.FromFloats("x", [.. Enumerable.Range(0, count * 2).Select(i => (float)i)], [2]), DataTensor.FromInt64("ids", [.. Enumerable.Range(0, count).Select(i => (long)i)], [1])],
        [.. Enumerable.Range(0, count).Select(i => (long)(i % 3))],
        "numbers");

    [Fact]
    public void Select_makes_a_view_in_the_given_order_and_views_compose()
    {
        var data = Numbered(10);

        var view = data.Select([7, 2, 9], "picked").Select([2, 0], "again");

        Assert.Equal([18f, 19, 14, 15], DataRecipe.Floats(view.Tensors[0]));
        Assert.Equal([9L, 7], DataRecipe.Longs(view.Tensor("ids")!));
        Assert.Equal([0L, 1], view.Labels!);
        Assert.Equal(["numbers row 9", "numbers row 7"], Enumerable.Range(0, 2).Select(view.Locate));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Select([10], "x"));
    }

    [Fact]
    public void Shuffle_is_seeded_and_keeps_rows_with_their_labels()
    {
        var data = Numbered(50);

        var a = data.Shuffle(3);
        var b = data.Shuffle(3);
        var c = data.Shuffle(4);

        var order = DataRecipe.Longs(a.Tensor("ids")!);
        Assert.Equal(order, DataRecipe.Longs(b.Tensor("ids")!));
        Assert.NotEqual(order, DataRecipe.Longs(c.Tensor("ids")!));
        Assert.NotEqual(Enumerable.Range(0, 50).Select(i => (long)i), order);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => (long)i), order.Order());
        Assert.Equal(order.Select(i => i % 3), a.Labels!);
        Assert.Equal(order.SelectMany(i => new[] { 2f * i, (2f * i) + 1 }), DataRecipe.Floats(a.Tensors[0]));
    }

    [Fact]
    public void SplitRandom_is_seeded_disjoint_complete_and_keeps_file_order()
    {
        var data = Numbered(101);

        var (rest, split) = data.SplitRandom(0.25, 9, "validation");
        var parts = data.SplitRandom([0.1, 20], 9, ["test", "pool"]);

        Assert.Equal((76, 25), (rest.Count, split.Count));
        var restIds = DataRecipe.Longs(rest.Tensor("ids")!);
        var splitIds = DataRecipe.Longs(split.Tensor("ids")!);
        Assert.Empty(restIds.Intersect(splitIds));
        Assert.Equal(101, restIds.Union(splitIds).Count());
        Assert.Equal(restIds.Order(), restIds);
        Assert.Equal("numbers (validation)", split.Source);
        Assert.Equal(splitIds, DataRecipe.Longs(data.SplitRandom(0.25, 9, "v").Split.Tensor("ids")!));
        // The first part of a multi-way split is the same draw as a one-way split of the same fraction.
        Assert.Equal(DataRecipe.Longs(data.SplitRandom(0.1, 9, "t").Split.Tensor("ids")!), DataRecipe.Longs(parts[1].Tensor("ids")!));
        Assert.Equal((71, 10, 20), (parts[0].Count, parts[1].Count, parts[2].Count));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.SplitRandom([0.5, 0.5], 1, ["a", "b"]));
    }

    [Fact]
    public void Bytes_read_as_floats_through_their_transform_and_as_int64_without_it()
    {
        var path = Path.Join(Path.GetTempPath(), $"mc-bytes-{Guid.NewGuid():N}.idx");
        try
        {
            Idx.Write(path, [2, 3], [0, 10, 255, 1, 2, 3]);
            var raw = IdxReader.OpenInputs(path, "pixels");
            var scaled = raw.WithTransform(new FeatureTransform(0.5f, [1f], [2f]));

            Assert.Equal(DataElementType.Int64, raw.ElementType);
            Assert.Equal(DataElementType.Float32, scaled.ElementType);
            Assert.Equal([0L, 10, 255, 1, 2, 3], DataRecipe.Longs(raw));
            Assert.Equal([-0.5f, 2f, 63.25f, -0.25f, 0f, 0.25f], DataRecipe.Floats(scaled));
            Assert.Throws<InvalidOperationException>(() => scaled.CopyRange(0, 1, new long[3]));
            Assert.Throws<ArgumentException>(() => raw.CopyRange(0, 2, new float[5]));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Inputs_gives_the_only_tensor_as_floats_and_refuses_several()
    {
        var single = new Dataset([1f, 2, 3, 4], [2], [0, 1], "single");

        Assert.Equal([1f, 2, 3, 4], single.Inputs);
        Assert.Same(single.Inputs, single.Inputs);
        Assert.Throws<InvalidOperationException>(() => Numbered(2).Inputs);
        Assert.Throws<ArgumentException>(() => new Dataset([DataTensor.FromFloats("a", new float[4], [2]), DataTensor.FromFloats("b", new float[6], [2])], null, "odd"));
        Assert.Throws<ArgumentException>(() => new Dataset([DataTensor.FromFloats("a", new float[4], [2]), DataTensor.FromFloats("a", new float[4], [2])], null, "twice"));
    }
}
