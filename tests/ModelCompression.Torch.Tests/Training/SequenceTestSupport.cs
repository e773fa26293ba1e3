using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Training;
using static ModelCompression.Torch.Tests.Graph.GraphTestSupport;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>A tiny causal decoder written as ONNX, and token sequences cut from a short text, for the per-token tests.</summary>
internal static class SequenceTestSupport
{
    private const string Text = "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. ";

    /// <summary>The characters of the text, in order of first appearance: id i is Alphabet[i].</summary>
    public static readonly string Alphabet = new([.. Text.Distinct()]);

    /// <summary>The vocabulary size of the sequences.</summary>
    public static int Vocabulary => Alphabet.Length;

    /// <summary>
    /// A decoder in the <see cref="DecoderConvention"/> (input_ids, attention_mask, position_ids -> logits) that is causal
    /// by construction: token and position embeddings, masked by attention_mask; the previous position's vector mixed in
    /// through Pad + Slice (a shift right by one), a tanh layer, and a projection to the vocabulary.
    /// </summary>
    public static ModelProto TinyDecoder(int width = 16, int hidden = 32, int maxLength = 32, int seed = 3, double headBound = 0.3) =>
        new GraphBuilder("tiny_decoder")
            .Input(DecoderConvention.InputIds, DataType.Int64, "batch", "sequence")
            .Input(DecoderConvention.AttentionMask, DataType.Int64, "batch", "sequence")
            .Input(DecoderConvention.PositionIds, DataType.Int64, "batch", "sequence")
            .Initializer("tokens", RandomFloats(Vocabulary * width, seed, 0.5), [Vocabulary, width])
            .Initializer("positions", RandomFloats(maxLength * width, seed + 1, 0.1), [maxLength, width])
            .Initializer("current", RandomFloats(width * hidden, seed + 2, 0.3), [width, hidden])
            .Initializer("previous", RandomFloats(width * hidden, seed + 3, 0.3), [width, hidden])
            .Initializer("head", RandomFloats(hidden * Vocabulary, seed + 4, headBound), [hidden, Vocabulary])
            .Initializer("pads", new long[] { 0, 1, 0, 0, 0, 0 }, [6])
            .Initializer("starts", new long[] { 0 }, [1])
            .Initializer("ends", new long[] { -1 }, [1])
            .Initializer("axis1", new long[] { 1 }, [1])
            .Initializer("axis2", new long[] { 2 }, [1])
            .Node("Gather", ["tokens", DecoderConvention.InputIds], ["e"])
            .Node("Gather", ["positions", DecoderConvention.PositionIds], ["p"])
            .Node("Add", ["e", "p"], ["h0"])
            .Node("Cast", [DecoderConvention.AttentionMask], ["mf"], Attr.Int("to", (long)DataType.Float))
            .Node("Unsqueeze", ["mf", "axis2"], ["m3"])
            .Node("Mul", ["h0", "m3"], ["h"])
            .Node("Pad", ["h", "pads"], ["padded"])
            .Node("Slice", ["padded", "starts", "ends", "axis1"], ["before"])
            .Node("MatMul", ["h", "current"], ["a"])
            .Node("MatMul", ["before", "previous"], ["b"])
            .Node("Add", ["a", "b"], ["c"])
            .Node("Tanh", ["c"], ["d"])
            .Node("MatMul", ["d", "head"], [DecoderConvention.Logits])
            .Output(DecoderConvention.Logits, DataType.Float, "batch", "sequence", Vocabulary)
            .Build();

    /// <summary>
    /// <paramref name="count"/> windows of the text of 8..<paramref name="length"/> characters, right-padded to
    /// <paramref name="length"/> (id 0, mask 0); the first <paramref name="prompt"/> tokens are a prompt (no label), every
    /// later token but the last learns the next one.
    /// </summary>
    public static TrainingSet Sequences(int count, int length = 16, int prompt = 3, int seed = 1)
    {
        var random = new Random(seed);
        var ids = new long[count * length];
        var mask = new long[count * length];
        var labels = new long[count * length];
        Array.Fill(labels, TrainingSet.NoLabel);
        for (var row = 0; row < count; row++)
        {
            var size = random.Next(8, length + 1);
            var start = random.Next(0, Text.Length - size);
            for (var t = 0; t < size; t++)
            {
                ids[(row * length) + t] = Alphabet.IndexOf(Text[start + t], StringComparison.Ordinal);
                mask[(row * length) + t] = 1;
            }

            for (var t = prompt; t < size - 1; t++)
            {
                labels[(row * length) + t] = ids[(row * length) + t + 1];
            }
        }

        return new TrainingSet([InputArray.Int64(DecoderConvention.InputIds, ids, [length]), InputArray.Int64(DecoderConvention.AttentionMask, mask, [length])], null, null, Vocabulary)
        {
            TokenLabels = labels,
        };
    }

    /// <summary>Random "teacher logits" for every position of every sequence of <paramref name="data"/>, [N, L, V].</summary>
    public static float[] TeacherLogits(TrainingSet data, int seed = 5) =>
        RandomFloats(data.Count * data.SequenceLength * data.Classes, seed, 3.0);

    /// <summary>Writes a store of <paramref name="logits"/> ([N, L, V]) at the labelled positions of <paramref name="data"/>.</summary>
    public static void WriteStore(string path, TrainingSet data, float[] logits, TeacherTokenForm form, int k = 0)
    {
        var length = data.SequenceLength;
        var vocabulary = data.Classes;
        using var writer = TeacherTokenWriter.Create(path, form, vocabulary, k);
        for (var row = 0; row < data.Count; row++)
        {
            writer.AppendLogits(logits.AsSpan(row * length * vocabulary, length * vocabulary), data.TokenLabels.AsSpan(row * length, length));
        }

        writer.Complete();
    }
}
