using ModelCompression.Architectures;
using ModelCompression.Diagnostics;
using ModelCompression.Pruning;
using ModelCompression.Stages;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;
using static ModelCompression.Core.Tests.Pruning.DecoderPruningSupport;

namespace ModelCompression.Core.Tests.Stages;

/// <summary>
/// A decoder student started from a decoder teacher's layers computes, in ONNX Runtime, what the teacher with the other
/// layers dropped computes: embedding, tied or untied head, position table, final norm and the mapped layers all come
/// over. Maps and weights that do not fit are errors, all at once.
/// </summary>
public sealed class DecoderTeacherInitializationTests
{
    [Theory]
    [InlineData(PositionEncoding.Learned, true, new[] { 1, 3 })]
    [InlineData(PositionEncoding.Learned, false, new[] { 0, 2 })]
    [InlineData(PositionEncoding.Rope, true, new[] { 0, 3 })]
    [InlineData(PositionEncoding.Rope, false, new[] { 2, 3 })]
    public void A_student_from_mapped_layers_computes_what_the_teacher_without_the_others_computes(PositionEncoding positions, bool withCache, int[] map)
    {
        var teacher = Build(Options(positions, layers: 4), withCache);
        var student = Build(Options(positions, layers: 2) with { Seed = 9 }, withCache);

        var (initialized, copied) = DecoderTeacherInitialization.Apply(student, teacher, map, "student.onnx", "teacher.onnx");

        var reference = DecoderLayerDropper.Drop(teacher, [.. Enumerable.Range(0, 4).Except(map)]);
        Assert.Equal(student.Graph.Initializer.Select(i => i.Name), copied);
        Assert.Equal(student.Graph.Initializer.Select(i => i.Name), initialized.Graph.Initializer.Select(i => i.Name));
        var (expected, actual) = (Forward(reference), Forward(initialized));
        Assert.Equal(expected.Keys, actual.Keys);
        Assert.All(expected, pair => AssertClose((float[])pair.Value.Data, (float[])actual[pair.Key].Data, 1e-5));
        // The student as built computes something else, and is not changed.
        Assert.NotEqual(Logits(reference), Logits(student));
        Assert.NotEqual(
            student.Graph.Initializer.Single(i => i.Name == "decoder.layer0.attention.query.weight"),
            initialized.Graph.Initializer.Single(i => i.Name == "decoder.layer0.attention.query.weight"));
    }

    [Fact]
    public void An_untied_student_takes_a_tied_teachers_embedding_transposed_as_its_head()
    {
        var teacher = Build(Options(PositionEncoding.Learned, layers: 3), withCache: true);
        var student = Build(Options(PositionEncoding.Learned, layers: 1, tied: false), withCache: true);

        var (initialized, copied) = DecoderTeacherInitialization.Apply(student, teacher, [2]);

        Assert.Contains("lm_head.weight", copied);
        AssertClose(Logits(DecoderLayerDropper.Drop(teacher, [0, 1])), Logits(initialized), 1e-5);
    }

    [Fact]
    public void Without_a_map_layer_i_comes_from_layer_i()
    {
        var teacher = Build(Options(PositionEncoding.Rope, layers: 3), withCache: true);
        var student = Build(Options(PositionEncoding.Rope, layers: 2) with { Seed = 2 }, withCache: true);

        var (initialized, _) = DecoderTeacherInitialization.Apply(student, teacher, null);

        AssertClose(Logits(DecoderLayerDropper.Drop(teacher, [2])), Logits(initialized), 1e-5);
    }

    [Fact]
    public void Layer_maps_that_do_not_fit_are_MC2076()
    {
        var teacher = Build(Options(PositionEncoding.Learned, layers: 3), withCache: true);
        var student = Build(Options(PositionEncoding.Learned, layers: 2), withCache: true);
        var deep = Build(Options(PositionEncoding.Learned, layers: 4), withCache: true);
        var encoder = TransformerBuilder.Build(new TransformerOptions { Width = 16, Heads = 4, Layers = 2, FeedForward = 24 }, new([6], 2, VocabSize: 23));

        var outOfRange = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(student, teacher, [1, 3], "student.onnx", "teacher.onnx"));
        var tooShort = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(student, teacher, [1]));
        var noMap = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(deep, teacher, null));
        var notDecoder = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(student, encoder, [0, 1], "student.onnx", "encoder.onnx"));

        Assert.All(new[] { outOfRange, tooShort, noMap, notDecoder }, e => Assert.Equal(DiagnosticCodes.DecoderLayerMapInvalid, e.Code));
        Assert.Contains("names teacher layer(s) 3; 'teacher.onnx' has layers 0, 1, 2", outOfRange.Message, StringComparison.Ordinal);
        Assert.Equal("student.onnx", outOfRange.Diagnostics[0].File);
        Assert.Contains("names 1 teacher layers for the 2 layers", tooShort.Message, StringComparison.Ordinal);
        Assert.Contains("has 4 layers and 'the teacher' only 3: give a layer_map", noMap.Message, StringComparison.Ordinal);
        Assert.Contains("'encoder.onnx' is not a decoder", notDecoder.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Weights_that_do_not_fit_are_MC2077_each_named()
    {
        var teacher = Build(Options(PositionEncoding.Learned, layers: 2), withCache: true);

        var narrow = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(
            Build(Options(PositionEncoding.Learned, layers: 2) with { Width = 8, Heads = 2 }, withCache: true), teacher, [0, 1]));
        var heads = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(
            Build(Options(PositionEncoding.Learned, layers: 2) with { Heads = 2 }, withCache: true), teacher, [1, 0]));
        var tied = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(
            Build(Options(PositionEncoding.Learned, layers: 1), withCache: true), Build(Options(PositionEncoding.Learned, layers: 2, tied: false), withCache: true), [1]));
        var rope = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(
            Build(Options(PositionEncoding.Learned, layers: 1), withCache: true), Build(Options(PositionEncoding.Rope, layers: 2), withCache: true), [0]));
        var longer = Assert.Throws<CompressionException>(() => DecoderTeacherInitialization.Apply(
            Build(Options(PositionEncoding.Learned, layers: 1) with { MaxLength = 32 }, withCache: true), teacher, [0]));

        Assert.All(new[] { narrow, heads, tied, rope, longer }, e => Assert.Equal(DiagnosticCodes.DecoderInitMismatch, e.Code));
        // Every weight of another width is named, with both shapes.
        Assert.True(narrow.Diagnostics.Count > 10);
        Assert.Contains(narrow.Diagnostics, d => d.Message.Contains("student weight 'decoder.layer1.attention.query.weight' is float [8, 8] and teacher weight 'decoder.layer1.attention.query.weight' float [16, 16]", StringComparison.Ordinal));
        Assert.Contains(narrow.Diagnostics, d => d.Message.Contains("'embedding.weight' is float [23, 8]", StringComparison.Ordinal));
        Assert.Contains("constant 'decoder.layer0.attention.query.heads_shape' is [0, 0, 2, 8] and the teacher's 'decoder.layer1.attention.query.heads_shape' [0, 0, 4, 4]", heads.Message, StringComparison.Ordinal);
        Assert.Contains("tie_embeddings: false", tied.Message, StringComparison.Ordinal);
        Assert.Contains("learned position table 'position_embedding.weight' and the teacher has none", rope.Message, StringComparison.Ordinal);
        Assert.Contains("'position_embedding.weight' is float [32, 16] and teacher weight 'position_embedding.weight' float [16, 16]", longer.Message, StringComparison.Ordinal);
    }
}
