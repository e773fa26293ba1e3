using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// Int4 weight-only quantization against ONNX Runtime's MatMulNBits: the packed blocks are read back by this file's
/// own unpacking (from the operator's specification, not from <see cref="Int4Blocks"/>), and ONNX Runtime must compute
/// the float product with exactly those weights.
/// </summary>
public sealed class Int4QuantizerTests
{
    [Theory]
    [InlineData(32, true, 64)]
    [InlineData(32, false, 64)]
    [InlineData(32, true, 70)]
    [InlineData(32, false, 70)]
    [InlineData(128, true, 256)]
    [InlineData(128, false, 256)]
    [InlineData(128, true, 200)]
    [InlineData(128, false, 200)]
    [InlineData(16, true, 40)]
    [InlineData(64, false, 100)]
    [InlineData(256, true, 300)]
    public void MatMulNBits_computes_the_float_product_of_the_unpacked_weights(int blockSize, bool symmetric, int k)
    {
        const int N = 24;
        var weight = Weight(k, N, seed: k + blockSize);
        var model = MatMulModel(weight, k, N);

        var (quantized, report) = Int4Quantizer.Quantize(model, blockSize, symmetric);

        Assert.Equal(["fc"], report.QuantizedNodes);
        var node = Assert.Single(quantized.Graph.Node);
        Assert.Equal(("MatMulNBits", "com.microsoft", "fc"), (node.OpType, node.Domain, node.Name));
        Assert.Equal(
            new (string, long)[] { ("K", k), ("N", N), ("bits", 4), ("block_size", blockSize), ("accuracy_level", 1) },
            node.Attribute.Select(a => (a.Name, a.I)));
        Assert.Contains(quantized.OpsetImport, o => o is { Domain: "com.microsoft", Version: 1 });
        Assert.DoesNotContain(quantized.Graph.Initializer, i => i.Name == "W");

        var blocks = (k + blockSize - 1) / blockSize;
        var unpacked = Unpack(quantized, node, k, N, blockSize);
        Assert.Equal(new long[] { N, blocks, blockSize / 2 }, Initializer(quantized, node.Input[1]).Dims);
        Assert.Equal(new long[] { N, blocks }, Initializer(quantized, node.Input[2]).Dims);
        Assert.Equal(symmetric ? 0 : N * ((blocks + 1) / 2), node.Input.Count > 3 && node.Input[3].Length > 0 ? Initializer(quantized, node.Input[3]).Dims.Aggregate(1L, (a, b) => a * b) : 0);

        // Each weight is within one step of its float value (half a step, but for the one value a symmetric
        // block clamps), and the padding past K dequantizes to 0.
        for (var r = 0; r < k; r++)
        {
            for (var c = 0; c < N; c++)
            {
                var step = MathF.Abs(unpacked.Scales[(c * blocks) + (r / blockSize)]);
                Assert.True(MathF.Abs(unpacked.Weight[(r * N) + c] - weight[(r * N) + c]) <= (0.5f * step) + 1e-6f || symmetric, $"[{r}, {c}]");
                Assert.True(MathF.Abs(unpacked.Weight[(r * N) + c] - weight[(r * N) + c]) <= step + 1e-6f, $"[{r}, {c}]");
            }
        }

        Assert.All(unpacked.Padding, p => Assert.Equal(0f, p));

        // ONNX Runtime on a [batch, sequence, K] activation equals the float product with the unpacked weights.
        var x = Weight(2 * 3 * k, 1, seed: 5);
        var expected = MatMul(x, unpacked.Weight, 6, k, N);
        var actual = Run(quantized, x, [2, 3, k]);
        var scale = expected.Max(MathF.Abs);
        Assert.All(expected.Zip(actual), p => Assert.True(MathF.Abs(p.First - p.Second) <= 1e-5f * scale, $"{p.First} vs {p.Second}, output scale {scale}"));

        // And it stays near the float model: 4-bit blocks, so a few percent of the output scale.
        var reference = Run(model, x, [2, 3, k]);
        var worst = reference.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        Assert.True(worst <= 0.08f * reference.Max(MathF.Abs), $"max |float - int4| = {worst}, output scale {reference.Max(MathF.Abs)}");
    }

    [Fact]
    public void Symmetric_blocks_give_the_largest_magnitude_the_extra_level()
    {
        // 16 inputs: the largest magnitude is -2, so scale = -2 / -8 = 0.25 and q = round(w / 0.25) + 8, clamped to 0..15;
        // +2 would be 16, clamps to 15 (1.75), the one value a symmetric block cannot hold.
        float[] block = [-2f, 1f, 0.5f, 0f, 0.3f, -0.3f, 2f, 0.125f, -1.75f, 1.75f, 0f, 0f, 0f, 0f, 0f, 0.6f];
        byte[] codes = [0, 12, 10, 8, 9, 7, 15, 8, 1, 15, 8, 8, 8, 8, 8, 10];

        var blocks = Int4Blocks.Quantize(block, columns: 1, rows: 16, blockSize: 16, symmetric: true);

        Assert.Equal([-2f / -8f], blocks.Scales);
        Assert.Null(blocks.ZeroPoints);
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (byte)(codes[2 * i] | (codes[(2 * i) + 1] << 4))), blocks.Packed);
    }

    [Fact]
    public void Asymmetric_blocks_map_the_range_with_zero_onto_0_to_15_and_pack_two_zero_points_per_byte()
    {
        // Three blocks of 16 in one column. Block 0 spans [-0.5, 1.0]: scale 0.1, zero point 5. Block 1 is all
        // positive, [0.3, 1.5] widened to [0, 1.5]: zero point 0. Block 2 holds only 2 of K = 34 (the rest is padding).
        var column = new float[34];
        column[0] = -0.5f;
        column[1] = 1.0f;
        column[2] = 0.21f;
        column[16] = 1.5f;
        column[17] = 0.3f;
        for (var i = 18; i < 32; i++)
        {
            column[i] = 0.72f;
        }

        column[32] = -0.3f;
        column[33] = -0.16f;

        var blocks = Int4Blocks.Quantize(column, columns: 1, rows: 34, blockSize: 16, symmetric: false);

        Assert.Equal(3, blocks.BlocksPerColumn);
        Assert.Equal(0.1f, blocks.Scales[0], 1e-7f);
        Assert.Equal(0.1f, blocks.Scales[1], 1e-7f);
        Assert.Equal(0.02f, blocks.Scales[2], 1e-7f);
        // Zero points 5, 0 and 15 (-0.3 / 0.02 = -15): bytes [0x05, 0x0F] (block 2 alone in its byte's low nibble).
        Assert.Equal([0x05, 0x0F], blocks.ZeroPoints);
        // Block 0: -0.5 -> 0, 1.0 -> 15, 0.21 -> 2 + 5 = 7, zeros -> 5.
        Assert.Equal([0xF0, 0x57, 0x55], blocks.Packed.Take(3));
        // Block 1: 1.5 -> 15, 0.3 -> 3, 0.72 -> 7.2 -> 7.
        Assert.Equal([0x3F, 0x77], blocks.Packed.Skip(8).Take(2));
        // Block 2: -0.3 -> -15 + 15 = 0, -0.16 -> -8 + 15 = 7; the padding is the zero point's code, 15.
        Assert.Equal([0x70, 0xFF, 0xFF], blocks.Packed.Skip(16).Take(3));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_gemm_with_transB_alpha_beta_and_a_bias_becomes_one_MatMulNBits_with_its_bias(bool transB)
    {
        const int K = 40, N = 12, M = 5;
        var weight = Weight(K, N, seed: 9);
        var stored = transB ? Transposed(weight, K, N) : weight;
        float[] bias = [.. Enumerable.Range(0, N).Select(i => (i - 6) * 0.1f)];
        var model = new GraphBuilder()
            .Opset(17)
            .Input("x", DataType.Float, M, K)
            .Output("y", DataType.Float, M, N)
            .Initializer("W", stored, transB ? [N, K] : [K, N])
            .Initializer("C", bias, [N])
            .Node(GraphEdit.Node("Gemm", "head", ["x", "W", "C"], ["y"], Attr.Float("alpha", 0.5f), Attr.Float("beta", 2f), Attr.Int("transB", transB ? 1 : 0)))
            .Build();

        var (quantized, report) = Int4Quantizer.Quantize(model, 32, symmetric: false);

        Assert.Equal(["head"], report.QuantizedNodes);
        var node = Assert.Single(quantized.Graph.Node);
        Assert.Equal("MatMulNBits", node.OpType);
        var unpacked = Unpack(quantized, node, K, N, 32);
        var foldedBias = TensorData.ToFloats(Initializer(quantized, node.Input[5]));
        Assert.Equal(bias.Select(b => 2f * b), foldedBias);
        var x = Weight(M * K, 1, seed: 2);
        var expected = MatMul(x, unpacked.Weight, M, K, N).Select((v, i) => v + foldedBias[i % N]).ToArray();
        var actual = Run(quantized, x, [M, K]);
        var scale = expected.Max(MathF.Abs);
        Assert.All(expected.Zip(actual), p => Assert.True(MathF.Abs(p.First - p.Second) <= 1e-5f * scale, $"{p.First} vs {p.Second}"));
        // alpha lives in the scales: the unpacked weight is half the float one.
        var reference = Run(model, x, [M, K]);
        Assert.True(reference.Zip(actual, (e, a) => MathF.Abs(e - a)).Max() <= 0.08f * reference.Max(MathF.Abs));
    }

    [Fact]
    public void Layers_that_MatMulNBits_cannot_express_stay_float_with_a_reason()
    {
        var model = new GraphBuilder()
            .Opset(17)
            .Input("x", DataType.Float, 8, 4)
            .Input("z", DataType.Float, 4, 4)
            .Output("a", DataType.Float, 4, 4)
            .Output("b", DataType.Float, 4, 4)
            .Output("c", DataType.Float, 8, 4)
            .Initializer("W", Weight(8, 4, seed: 1), [8, 4])
            .Initializer("W3", Weight(2, 16, seed: 1), [2, 4, 4])
            .Node(GraphEdit.Node("Gemm", "transposed_a", ["x", "W"], ["a"], Attr.Int("transA", 1)))
            .Node(GraphEdit.Node("MatMul", "activations", ["z", "z"], ["b"]))
            .Node(GraphEdit.Node("MatMul", "batched", ["x", "W3"], ["c3"]))
            .Node(GraphEdit.Node("ReduceSum", "sum", ["c3"], ["c"], Attr.Int("keepdims", 0), Attr.Ints("axes", 0)))
            .Build();

        var (quantized, report) = Int4Quantizer.Quantize(model, 32, symmetric: true);

        Assert.Empty(report.QuantizedNodes);
        Assert.Equal(
            ["transposed_a (Gemm): transA is set", "activations (MatMul): the weight is not a constant", "batched (MatMul): the weight is not a 2-D float tensor"],
            report.SkippedNodes);
        Assert.Equal(model.Graph.Node, quantized.Graph.Node);
        Assert.DoesNotContain(quantized.OpsetImport, o => o.Domain == "com.microsoft");
    }

    [Fact]
    public void Block_sizes_MatMulNBits_does_not_take_are_refused()
    {
        var model = MatMulModel(Weight(32, 4, seed: 1), 32, 4);

        Assert.Throws<ArgumentOutOfRangeException>(() => Int4Quantizer.Quantize(model, 48, symmetric: true));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int4Quantizer.Quantize(model, 8, symmetric: true));
        Assert.Throws<ArgumentOutOfRangeException>(() => Int4Quantizer.Quantize(model, 512, symmetric: true));
    }

    internal static float[] Weight(int rows, int columns, int seed)
    {
        // Columns of different magnitudes and a per-column offset, so blocks differ and lean to one side.
        var random = new Random(seed);
        var values = new float[rows * columns];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                values[(r * columns) + c] = (((random.NextSingle() * 2) - 1) * (0.2f + (c % 5))) + (0.1f * (c % 3));
            }
        }

        return values;
    }

    internal static ModelProto MatMulModel(float[] weight, int k, int n) =>
        new GraphBuilder()
            .Opset(17)
            .Input("x", DataType.Float, "batch", "sequence", k)
            .Output("y", DataType.Float, "batch", "sequence", n)
            .Initializer("W", weight, [k, n])
            .Node(GraphEdit.Node("MatMul", "fc", ["x", "W"], ["y"]))
            .Build();

    /// <summary>
    /// A MatMulNBits node's weight as [K, N] floats, by the operator's specification: B is [N, blocks, block_size / 2]
    /// bytes, element k of column n in byte (k % block_size) / 2 of block k / block_size, even k in the low nibble;
    /// zero points (absent: 8) packed two per byte along the blocks, even block in the low nibble. Also the codes
    /// past K (padding), dequantized.
    /// </summary>
    internal static (float[] Weight, float[] Scales, float[] Padding) Unpack(ModelProto model, NodeProto node, int k, int n, int blockSize)
    {
        var packed = TensorData.ToUInt8s(Initializer(model, node.Input[1]));
        var scales = TensorData.ToFloats(Initializer(model, node.Input[2]));
        byte[]? zeroPoints = node.Input.Count > 3 && node.Input[3].Length > 0 ? TensorData.ToUInt8s(Initializer(model, node.Input[3])) : null;
        var blocks = (k + blockSize - 1) / blockSize;
        var zeroPointRow = (blocks + 1) / 2;
        float Value(int column, int row)
        {
            var block = row / blockSize;
            var b = packed[(column * blocks * (blockSize / 2)) + (block * (blockSize / 2)) + ((row % blockSize) / 2)];
            var code = row % 2 == 0 ? b & 0x0F : b >> 4;
            var zeroPoint = zeroPoints is null ? 8 : (block % 2 == 0 ? zeroPoints[(column * zeroPointRow) + (block / 2)] & 0x0F : zeroPoints[(column * zeroPointRow) + (block / 2)] >> 4);
            return (code - zeroPoint) * scales[(column * blocks) + block];
        }

        var weight = new float[k * n];
        var padding = new List<float>();
        for (var c = 0; c < n; c++)
        {
            for (var r = 0; r < blocks * blockSize; r++)
            {
                if (r < k)
                {
                    weight[(r * n) + c] = Value(c, r);
                }
                else
                {
                    padding.Add(Value(c, r));
                }
            }
        }

        return (weight, scales, [.. padding]);
    }

    internal static TensorProto Initializer(ModelProto model, string name) => model.Graph.Initializer.Single(i => i.Name == name);

    internal static float[] MatMul(float[] x, float[] w, int m, int k, int n)
    {
        var y = new float[m * n];
        for (var i = 0; i < m; i++)
        {
            for (var j = 0; j < n; j++)
            {
                var sum = 0.0;
                for (var l = 0; l < k; l++)
                {
                    sum += (double)x[(i * k) + l] * w[(l * n) + j];
                }

                y[(i * n) + j] = (float)sum;
            }
        }

        return y;
    }

    internal static float[] Transposed(float[] values, int rows, int columns)
    {
        var result = new float[values.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                result[(c * rows) + r] = values[(r * columns) + c];
            }
        }

        return result;
    }

    private static float[] Run(ModelProto model, float[] x, long[] shape)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        using var input = OrtValue.CreateTensorValueFromMemory(x, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [session.InputNames[0]], [input], [session.OutputNames[0]]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
