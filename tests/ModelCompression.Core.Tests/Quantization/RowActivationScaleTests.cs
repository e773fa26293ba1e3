using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Quantization;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// Dynamic int8 with one activation scale per row (<see cref="ActivationScale.Row"/>): a row's output depends on that
/// row alone, which one scale per run (DynamicQuantizeLinear) cannot give: a batch's outlier row coarsens every other
/// row's steps, so a decoder's answer to a prompt changed with the prompts batched with it.
/// </summary>
public sealed class RowActivationScaleTests
{
    private const int K = 16;
    private const int N = 5;

    [Theory]
    [InlineData(17)]
    [InlineData(18)]
    public void Each_row_is_quantized_alone_as_dynamic_quantize_linear_would_quantize_it(long opset)
    {
        var model = MatMul(opset);
        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel: true, activationScale: ActivationScale.Row);
        Assert.Equal(["mm"], report.QuantizedNodes);
        Assert.DoesNotContain(quantized.Graph.Node, n => n.OpType is "DynamicQuantizeLinear" or "MatMul");
        SaturationCheck.ThrowIfUnproven(quantized, "test model");

        // Rows: mixed signs, all positive (zero point 0), all negative (zero point 255), all zero (range guard), a large outlier.
        var random = new Random(11);
        float[][] rows =
        [
            [.. Enumerable.Range(0, K).Select(_ => (float)((random.NextDouble() * 2) - 1))],
            [.. Enumerable.Range(0, K).Select(_ => (float)(random.NextDouble() + 0.1))],
            [.. Enumerable.Range(0, K).Select(_ => (float)(-random.NextDouble() - 0.1))],
            new float[K],
            [.. Enumerable.Range(0, K).Select(i => i == 3 ? 80f : (float)((random.NextDouble() * 2) - 1))],
        ];
        var actual = Run(quantized, [.. rows.SelectMany(r => r)], rows.Length);

        var weight = TensorData.ToInt8s(quantized.Graph.Initializer.Single(i => i.DataType == (int)DataType.Int8 && i.Dims.Count == 2));
        var weightScales = TensorData.ToFloats(quantized.Graph.Initializer.Single(i => i.Name.EndsWith(".weight_scale", StringComparison.Ordinal)));
        for (var r = 0; r < rows.Length; r++)
        {
            var expected = Reference(rows[r], weight, weightScales);
            for (var c = 0; c < N; c++)
            {
                Assert.True(MathF.Abs(expected[c] - actual[(r * N) + c]) <= 1e-5f * (1 + MathF.Abs(expected[c])), $"row {r} column {c}: expected {expected[c]}, got {actual[(r * N) + c]}");
            }
        }

        Assert.All(actual.Skip(3 * N).Take(N), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void A_rows_output_does_not_depend_on_its_batch_with_row_scales_and_does_with_one_scale_per_run()
    {
        var model = MatMul(17);
        var random = new Random(5);
        float[] ordinary = [.. Enumerable.Range(0, K).Select(_ => (float)((random.NextDouble() * 2) - 1))];
        float[] outlier = [.. Enumerable.Range(0, K).Select(i => i == 0 ? 60f : (float)((random.NextDouble() * 2) - 1))];

        float[] AloneAndBatched(ActivationScale scale)
        {
            var (quantized, _) = DynamicQuantizer.Quantize(model, perChannel: true, activationScale: scale);
            var alone = Run(quantized, ordinary, 1);
            var batched = Run(quantized, [.. ordinary, .. outlier], 2).Take(N).ToArray();
            return [.. alone.Zip(batched, (a, b) => a - b)];
        }

        Assert.All(AloneAndBatched(ActivationScale.Row), d => Assert.Equal(0f, d));
        Assert.Contains(AloneAndBatched(ActivationScale.Tensor), d => d != 0f);
    }

    [Fact]
    public void A_row_quantized_decoder_answers_a_prompt_alone_as_in_a_batch()
    {
        var decoder = DecoderBuilder.Build(
            new DecoderOptions { VocabSize = 257, MaxLength = 48, Width = 32, Heads = 2, Layers = 2, FeedForward = 64, Positions = PositionEncoding.Rope, Dropout = 0, Seed = 9 },
            new ArchitectureInputs([0], 1));
        var (quantized, report) = DynamicQuantizer.Quantize(decoder, perChannel: false, activationScale: ActivationScale.Row);
        Assert.True(report.QuantizedNodes.Count >= 9, string.Join(", ", report.QuantizedNodes));
        using var dir = new TempDir();
        var path = dir.File("int8.onnx");
        OnnxModelFile.Save(quantized, path);
        using var session = DecoderSession.Open(path, threads: 1);
        var generator = new Generator(session);
        IReadOnlyList<int>[] prompts = [[72, 105, 33, 32], [.. Enumerable.Range(97, 20)], [250, 3, 3, 250, 1, 1, 0]];
        var options = new GenerationOptions { MaxNewTokens = 16, BatchSize = 3 };

        var together = generator.Generate(prompts, options);
        for (var p = 0; p < prompts.Length; p++)
        {
            Assert.Equal(generator.Generate([prompts[p]], options with { BatchSize = 1 })[0].Tokens, together[p].Tokens);
        }
    }

    /// <summary>x[rows, K] -> MatMul with a constant W[K, N] -> y[rows, N], at <paramref name="opset"/>.</summary>
    private static ModelProto MatMul(long opset)
    {
        var random = new Random(3);
        return new GraphBuilder("matmul")
            .Opset(opset)
            .Input("x", DataType.Float, "rows", K)
            .Initializer("w", [.. Enumerable.Range(0, K * N).Select(_ => (float)((random.NextDouble() * 2) - 1) * 0.5f)], [K, N])
            .Node("MatMul", ["x", "w"], ["y"], "mm", "")
            .Output("y", DataType.Float, "rows", N)
            .Build();
    }

    /// <summary>DynamicQuantizeLinear's arithmetic on one row, the integer product, and the scales, computed here.</summary>
    private static float[] Reference(float[] row, sbyte[] weight, float[] weightScales)
    {
        var high = Math.Max(row.Max(), 0f);
        var low = Math.Min(row.Min(), 0f);
        var scale = Math.Max(high - low, 1e-12f) / 255f;
        var zeroPoint = MathF.Round(-low / scale, MidpointRounding.ToEven);
        var codes = row.Select(x => Math.Clamp(MathF.Round(x / scale, MidpointRounding.ToEven) + zeroPoint, 0f, 255f)).ToArray();
        var output = new float[N];
        for (var c = 0; c < N; c++)
        {
            long sum = 0;
            for (var k = 0; k < K; k++)
            {
                sum += ((long)codes[k] - (long)zeroPoint) * weight[(k * N) + c];
            }

            output[c] = sum * scale * weightScales[weightScales.Length == 1 ? 0 : c];
        }

        return output;
    }

    private static float[] Run(ModelProto model, float[] x, int rows)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model.ToByteArray(), options);
        using var input = OrtValue.CreateTensorValueFromMemory(x, [rows, K]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["x"], [input], ["y"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
