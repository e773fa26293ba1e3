using ModelCompression.Onnx;
using ModelCompression.Quantization;
using Xunit.Abstractions;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Core.Tests.Quantization;

/// <summary>
/// Dynamic int8 of a decoder-shaped graph whose output head is tied to the token table (MatMul(x, Transpose(table)),
/// as the built-in decoder writes it): the head gets its own int8 copy of the transposed table, and the lookup, no
/// longer sharing its table with a float reader, an int8 table too.
/// </summary>
public sealed class TiedHeadInt8Tests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_tied_head_and_its_lookup_both_become_int8_and_no_float_table_is_left(bool perChannel)
    {
        var model = Int4ModelTests.Decoder();

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel);

        Assert.Equal(["embed", "mlp.up", "mlp.down", "head"], report.QuantizedNodes);
        Assert.Empty(report.SkippedNodes);
        Assert.DoesNotContain(quantized.Graph.Initializer, i => i.DataType == (int)DataType.Float && i.Dims.Count == 2);
        Assert.DoesNotContain(quantized.Graph.Node, n => n.OpType == "Transpose");
        var head = quantized.Graph.Node.Single(n => n.OpType == "MatMulInteger" && n.Output[0].StartsWith("head", StringComparison.Ordinal));
        Assert.Equal(new long[] { Int4ModelTests.Width, Int4ModelTests.Vocab }, quantized.Graph.Initializer.Single(i => i.Name == head.Input[1]).Dims);
        var gather = quantized.Graph.Node.Single(n => n.Name == "embed");
        Assert.Equal(DataType.Int8, (DataType)quantized.Graph.Initializer.Single(i => i.Name == gather.Input[0]).DataType);
        // Target any: the head is proven exact on AVX2-only CPUs like every other int8 layer.
        SaturationCheck.ThrowIfUnproven(quantized, "decoder");
        OnnxChecker.ThrowIfInvalid(quantized);

        var ids = Int4ModelTests.Ids();
        var (reference, actual) = (Int4ModelTests.Logits(model, ids), Int4ModelTests.Logits(quantized, ids));
        var worst = reference.Zip(actual, (e, a) => MathF.Abs(e - a)).Max();
        output.WriteLine($"per channel {perChannel}: max |float - int8| {worst}, logit scale {reference.Max(MathF.Abs)}");
        Assert.True(worst <= 0.03f * reference.Max(MathF.Abs), $"max |float - int8| = {worst}");
    }

    [Fact]
    public void An_excluded_tied_head_keeps_the_table_float_for_both()
    {
        var model = Int4ModelTests.Decoder();

        var (quantized, report) = DynamicQuantizer.Quantize(model, perChannel: true, n => n.Name != "head");

        Assert.Equal(["mlp.up", "mlp.down"], report.QuantizedNodes);
        Assert.Equal(["embed (Gather): the table is shared with other nodes", "head (MatMul): excluded"], report.SkippedNodes);
        Assert.Contains(quantized.Graph.Initializer, i => i.Name == "embedding.weight" && i.DataType == (int)DataType.Float);
        Assert.Contains(quantized.Graph.Node, n => n.OpType == "Transpose");
    }
}
