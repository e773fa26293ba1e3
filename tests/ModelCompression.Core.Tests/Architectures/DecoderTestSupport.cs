using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Architectures;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Torch.Graph;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>Runs decoder graphs in ONNX Runtime and in the trainable graph on named host arrays.</summary>
internal static class DecoderTestSupport
{
    /// <summary>A tiny decoder: 2 layers, 2 heads of width 6, vocabulary 23, up to 16 positions.</summary>
    public static DecoderOptions Tiny(PositionEncoding positions) => new()
    {
        VocabSize = 23,
        MaxLength = 16,
        Width = 12,
        Heads = 2,
        Layers = 2,
        FeedForward = 20,
        Positions = positions,
        Dropout = 0,
        Seed = 3,
    };

    public static readonly ArchitectureInputs NoData = new([0], 1);

    /// <summary>A named input: host values and shape.</summary>
    public sealed record Value(Array Data, long[] Shape)
    {
        public static Value Longs(long[] data, params long[] shape) => new(data, shape);

        public static Value Floats(float[] data, params long[] shape) => new(data, shape);
    }

    /// <summary>Decoder inputs for one pass: ids [batch, sequence], a mask of ones unless given, positions past.. past+sequence.</summary>
    public static Dictionary<string, Value> Inputs(long[][] ids, long[][]? mask = null, long[][]? positions = null, int past = 0)
    {
        var batch = ids.Length;
        var sequence = ids[0].Length;
        mask ??= [.. ids.Select(_ => Enumerable.Repeat(1L, past + sequence).ToArray())];
        positions ??= [.. ids.Select(_ => Enumerable.Range(past, sequence).Select(p => (long)p).ToArray())];
        return new()
        {
            [DecoderConvention.InputIds] = Value.Longs([.. ids.SelectMany(r => r)], batch, sequence),
            [DecoderConvention.AttentionMask] = Value.Longs([.. mask.SelectMany(r => r)], batch, mask[0].Length),
            [DecoderConvention.PositionIds] = Value.Longs([.. positions.SelectMany(r => r)], batch, sequence),
        };
    }

    /// <summary>Adds the cache inputs: <paramref name="presents"/> from a previous step, or empty pasts for <paramref name="batch"/> rows.</summary>
    public static Dictionary<string, Value> WithPast(Dictionary<string, Value> inputs, DecoderOptions options, int batch, IReadOnlyDictionary<string, Value>? presents = null)
    {
        for (var i = 0; i < options.Layers; i++)
        {
            inputs[DecoderConvention.PastKey(i)] = presents?[DecoderConvention.PresentKey(i)] ?? Value.Floats([], batch, options.Heads, 0, options.HeadWidth);
            inputs[DecoderConvention.PastValue(i)] = presents?[DecoderConvention.PresentValue(i)] ?? Value.Floats([], batch, options.Heads, 0, options.HeadWidth);
        }

        return inputs;
    }

    /// <summary>Every output of <paramref name="model"/> run by ONNX Runtime (float outputs), by name.</summary>
    public static Dictionary<string, Value> RunOrt(ModelProto model, IReadOnlyDictionary<string, Value> inputs)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        var names = session.InputMetadata.Keys.ToList();
        var values = names.Select(n => inputs[n].Data switch
        {
            float[] f => OrtValue.CreateTensorValueFromMemory(f, inputs[n].Shape),
            long[] l => OrtValue.CreateTensorValueFromMemory(l, inputs[n].Shape),
            _ => throw new ArgumentException("float or long inputs only"),
        }).ToList();
        try
        {
            var outputNames = session.OutputMetadata.Keys.ToList();
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, names, values, outputNames);
            return outputNames.Select((name, i) => (name, outputs[i]))
                .ToDictionary(o => o.name, o => Value.Floats(o.Item2.GetTensorDataAsSpan<float>().ToArray(), o.Item2.GetTensorTypeAndShape().Shape));
        }
        finally
        {
            values.ForEach(v => v.Dispose());
        }
    }

    /// <summary>The trainable graph's outputs on the same inputs (inputs it has no use for are skipped).</summary>
    public static Dictionary<string, Value> RunTorch(TrainableGraph graph, IReadOnlyDictionary<string, Value> inputs)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var tensors = inputs.ToDictionary(i => i.Key, i => i.Value.Data switch
        {
            float[] f => torch.tensor(f, i.Value.Shape),
            long[] l => torch.tensor(l, i.Value.Shape),
            _ => throw new ArgumentException("float or long inputs only"),
        });
        return graph.Forward(tensors).ToDictionary(
            o => o.Key,
            o => Value.Floats(o.Value.numel() == 0 ? [] : o.Value.detach().cpu().contiguous().data<float>().ToArray(), o.Value.shape));
    }

    /// <summary>Row <paramref name="row"/>, positions <paramref name="positions"/> of logits [batch, sequence, vocab], flat.</summary>
    public static float[] Slice(Value logits, int row, Range positions)
    {
        var (sequence, vocab) = ((int)logits.Shape[1], (int)logits.Shape[2]);
        var (start, length) = positions.GetOffsetAndLength(sequence);
        return ((float[])logits.Data).AsSpan(((row * sequence) + start) * vocab, length * vocab).ToArray();
    }

    /// <summary>max |a - e| / max(max |e|, 1e-6).</summary>
    public static double RelativeError(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        if (expected.Length == 0)
        {
            return 0;
        }

        var scale = Math.Max(expected.Max(v => Math.Abs((double)v)), 1e-6);
        return actual.Zip(expected, (a, e) => Math.Abs((double)a - e)).Max() / scale;
    }
}
