using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// The decoder session on the PyTorch fixture: the signature read from each export, ONNX Runtime's logits against
/// PyTorch's (a whole left-padded batch, then one cached step), and decoders that break the convention.
/// </summary>
public sealed class DecoderSessionTests : IDisposable
{
    // PyTorch's logits are stored to 6 decimals; ONNX Runtime's kernels sum in another order.
    private const float Tolerance = 2e-4f;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Reads_the_signature_of_each_export()
    {
        using var cached = DecoderSession.Open(DecoderFixture.Cached, threads: 1);
        using var plain = DecoderSession.Open(DecoderFixture.NoCache, threads: 1);

        Assert.Equal(new DecoderSignature(2, 4, 16, HasPositionIds: true, Vocabulary: 257, MaxPositions: 64), cached.Signature);
        Assert.True(cached.Signature.HasCache);
        Assert.Equal(new DecoderSignature(0, 0, 0, HasPositionIds: true, Vocabulary: 257, MaxPositions: 64), plain.Signature);
        Assert.False(plain.Signature.HasCache);
    }

    [Theory]
    [InlineData("byte_decoder.onnx")]
    [InlineData("byte_decoder_nocache.onnx")]
    public void Logits_of_a_left_padded_batch_equal_PyTorchs(string file)
    {
        var forward = DecoderFixture.Expected.GetProperty("forward");
        var mask = DecoderFixture.Longs(forward.GetProperty("attention_mask"));
        var expected = DecoderFixture.Floats(forward.GetProperty("logits"));
        using var session = DecoderSession.Open(Path.Join(DecoderFixture.Folder, file), threads: 1);

        var logits = session.Forward(DecoderFixture.Longs(forward.GetProperty("input_ids")), mask, DecoderFixture.Longs(forward.GetProperty("position_ids")), forward.GetProperty("batch").GetInt32());

        Assert.Equal(expected.Length, logits.Length);
        var compared = 0;
        for (var position = 0; position < mask.Length; position++)
        {
            // A pad query sees no key: its logits are defined by rounding, not by the model.
            if (mask[position] == 0)
            {
                continue;
            }

            for (var v = 0; v < 257; v++)
            {
                var i = (position * 257) + v;
                Assert.True(Math.Abs(expected[i] - logits[i]) <= Tolerance, $"position {position}, token {v}: PyTorch {expected[i]}, ONNX Runtime {logits[i]}");
                compared++;
            }
        }

        Assert.Equal(mask.Count(m => m == 1) * 257, compared);
    }

    [Fact]
    public void A_step_fed_the_present_of_the_previous_equals_PyTorchs_cached_step()
    {
        var forward = DecoderFixture.Expected.GetProperty("forward");
        var step = DecoderFixture.Expected.GetProperty("cached_step");
        using var session = DecoderSession.Open(DecoderFixture.Cached, threads: 1);

        using var first = session.Run(DecoderFixture.Longs(forward.GetProperty("input_ids")), DecoderFixture.Longs(forward.GetProperty("attention_mask")), DecoderFixture.Longs(forward.GetProperty("position_ids")), 3);
        Assert.Equal(4, first.Present.Count);
        Assert.Equal([3L, 4, forward.GetProperty("sequence").GetInt32(), 16], first.Present[0].GetTensorTypeAndShape().Shape);
        using var second = session.Run(DecoderFixture.Longs(step.GetProperty("input_ids")), DecoderFixture.Longs(step.GetProperty("attention_mask")), DecoderFixture.Longs(step.GetProperty("position_ids")), 3, first.Present);

        var expected = DecoderFixture.Floats(step.GetProperty("logits"));
        var logits = second.Logits.ToArray();
        Assert.Equal(expected.Length, logits.Length);
        Assert.All(Enumerable.Range(0, expected.Length), i => Assert.True(Math.Abs(expected[i] - logits[i]) <= Tolerance, $"{i}: PyTorch {expected[i]}, ONNX Runtime {logits[i]}"));
        Assert.Equal(logits.AsSpan(2 * 257, 257).ToArray(), second.LastLogits(2).ToArray());
    }

    [Fact]
    public void A_classifier_is_not_a_decoder()
    {
        var path = Path.Join(Repo.Root, "tests", "fixtures", "pytorch", "mlp_opset13.onnx");

        var error = Assert.Throws<CompressionException>(() => DecoderSession.Open(path));

        Assert.Equal(DiagnosticCodes.DecoderNotInConvention, error.Code);
        Assert.All(error.Diagnostics, d => Assert.Equal(path, d.File));
        Assert.Contains(error.Diagnostics, d => d.Message.Contains("no input 'input_ids'", StringComparison.Ordinal));
        Assert.Contains(error.Diagnostics, d => d.Message.Contains("no output 'logits'", StringComparison.Ordinal));
    }

    [Fact]
    public void A_past_without_its_present_and_an_unknown_input_are_each_reported()
    {
        var model = OnnxModelFile.Load(DecoderFixture.Cached);
        var present = model.Graph.Output.Single(o => o.Name == DecoderConvention.PresentValue(1));
        model.Graph.Output.Remove(present);
        model.Graph.Input.Add(new ValueInfoProto { Name = "token_type_ids", Type = model.Graph.Input[0].Type.Clone() });
        var path = _dir.File("broken.onnx");
        OnnxModelFile.Save(model, path);

        var error = Assert.Throws<CompressionException>(() => DecoderSession.Open(path));

        Assert.Equal(2, error.Diagnostics.Count);
        Assert.All(error.Diagnostics, d => Assert.Equal((DiagnosticCodes.DecoderNotInConvention, path), (d.Code, d.File)));
        Assert.Contains("input 'past_key_values.1.value' has no output 'present.1.value'", error.Diagnostics[0].Message, StringComparison.Ordinal);
        Assert.Contains("inputs the convention does not know: 'token_type_ids'", error.Diagnostics[1].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ids_that_are_not_int64_are_reported()
    {
        var model = OnnxModelFile.Load(DecoderFixture.NoCache);
        model.Graph.Input.Single(i => i.Name == DecoderConvention.PositionIds).Type.TensorType.ElemType = (int)TensorProto.Types.DataType.Int32;
        var path = _dir.File("int32.onnx");
        OnnxModelFile.Save(model, path);

        var error = Assert.Throws<CompressionException>(() => DecoderSession.Open(path));

        Assert.Equal(DiagnosticCodes.DecoderNotInConvention, error.Code);
        Assert.Contains("input 'position_ids' is Int32, not int64", error.Message, StringComparison.Ordinal);
    }
}
