using ModelCompression.Architectures;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>The token models honour the attention mask: padding never changes the logits.</summary>
public sealed class TokenMaskingTests
{
    private static readonly long[] Tokens = [5, 17, 3, 9];

    [Theory]
    [InlineData("transformer-mean-gelu")]
    [InlineData("transformer-cls-relu")]
    [InlineData("text_cnn-mask")]
    [InlineData("embedding_bag-mask")]
    public void Changing_padded_token_ids_does_not_change_the_logits(string id)
    {
        var model = Case(id).Build();
        const int Length = 8;
        var first = Padded(Tokens, Length, pad: 0);
        var second = Padded(Tokens, Length, pad: 0);
        for (var t = Tokens.Length; t < Length; t++)
        {
            second.Ids[t] = 20 + t;
        }

        var a = RunOrt(model, Inputs(first.Ids, first.Mask)).Values;
        var b = RunOrt(model, Inputs(second.Ids, second.Mask)).Values;

        AssertClose(a, b, 1e-6);
        // And the mask is what does it: the same change without the mask moves the logits.
        var unmasked = RunOrt(model, Inputs(second.Ids, Ones(Length))).Values;
        Assert.NotEqual(a, unmasked);
    }

    [Theory]
    [InlineData("transformer-mean-gelu")]
    [InlineData("transformer-cls-relu")]
    [InlineData("embedding_bag-mask")]
    public void Padded_sequence_gives_the_logits_of_the_unpadded_one(string id)
    {
        // Mean pooling averages only unpadded positions, and attention gives padded keys zero weight, so a
        // sequence padded to 8 must score as the same tokens alone (the sequence axis is dynamic).
        var model = Case(id).Build();
        var padded = Padded(Tokens, 8, pad: 1);

        var alone = RunOrt(model, Inputs(Tokens, Ones(Tokens.Length))).Values;
        var withPadding = RunOrt(model, Inputs(padded.Ids, padded.Mask)).Values;

        AssertClose(alone, withPadding, 1e-5);
    }

    [Fact]
    public void Mean_pooling_differs_from_cls_pooling()
    {
        var c = Case("transformer-mean-gelu");
        var mean = c.Build();
        var cls = TransformerBuilder.Build((TransformerOptions)c.Options with { Pooling = TokenPooling.Cls }, c.Inputs);
        var input = Inputs(Tokens, Ones(Tokens.Length));

        Assert.NotEqual(RunOrt(mean, input).Values, RunOrt(cls, input).Values);
    }

    [Fact]
    public void Rows_of_a_batch_are_independent()
    {
        // A row's logits must not depend on the other rows (no batch statistics at inference, no mixing).
        var model = Case("transformer-mean-gelu").Build();
        var one = Padded(Tokens, 6, pad: 0);
        long[] ids = [.. one.Ids, 7, 8, 9, 10, 11, 12];
        long[] mask = [.. one.Mask, 1, 1, 1, 1, 1, 1];

        var alone = RunOrt(model, Inputs(one.Ids, one.Mask)).Values;
        var batched = RunOrt(model, new Dictionary<string, (Array Data, long[] Shape)> { ["input_ids"] = (ids, [2, 6]), ["attention_mask"] = (mask, [2, 6]) }).Values;

        AssertClose(alone, batched[..alone.Length], 1e-5);
    }

    private static (long[] Ids, long[] Mask) Padded(long[] tokens, int length, long pad)
    {
        var ids = Enumerable.Repeat(pad, length).ToArray();
        var mask = new long[length];
        tokens.CopyTo(ids, 0);
        Array.Fill(mask, 1L, 0, tokens.Length);
        return (ids, mask);
    }

    private static long[] Ones(int length) => Enumerable.Repeat(1L, length).ToArray();

    private static Dictionary<string, (Array Data, long[] Shape)> Inputs(long[] ids, long[] mask) => new()
    {
        ["input_ids"] = (ids, [1, ids.Length]),
        ["attention_mask"] = (mask, [1, mask.Length]),
    };
}
