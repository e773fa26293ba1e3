using ModelCompression.Architectures;
using ModelCompression.Generation;
using ModelCompression.Onnx;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// Generation at the end of a decoder's position table. A batch runs its rows together, so a row that hit the table's
/// end is still fed while the others go on; its position must stay inside the table (it used to run past it, and ONNX
/// Runtime's Gather failed with MC2002). Rotary tables count as the position table too.
/// </summary>
public sealed class PositionLimitTests : IDisposable
{
    private const int Positions = 16;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void A_row_that_reached_the_table_end_waits_inside_it_while_a_shorter_prompt_goes_on(PositionEncoding positions)
    {
        var path = _dir.File($"decoder-{positions}.onnx");
        OnnxModelFile.Save(
            DecoderBuilder.Build(new DecoderOptions { VocabSize = 257, MaxLength = Positions, Width = 32, Heads = 2, Layers = 1, FeedForward = 64, Positions = positions, Dropout = 0, Seed = 5 }, new ArchitectureInputs([0], 1)),
            path);
        using var session = DecoderSession.Open(path, threads: 1);
        Assert.Equal(Positions, session.Signature.MaxPositions);

        IReadOnlyList<int> shortPrompt = [72, 105, 33, 32];
        IReadOnlyList<int> longPrompt = [.. Enumerable.Range(97, 12)];
        var options = new GenerationOptions { MaxNewTokens = 40, BatchSize = 2 };
        var generator = new Generator(session);

        var together = generator.Generate([shortPrompt, longPrompt], options);
        var alone = new[] { shortPrompt, longPrompt }.Select(p => generator.Generate([p], options with { BatchSize = 1 })[0]).ToList();

        for (var row = 0; row < 2; row++)
        {
            Assert.Equal(alone[row].Tokens, together[row].Tokens);
            Assert.Equal(alone[row].FinishReason, together[row].FinishReason);
        }

        // Untrained, the decoder may stop early at end of text; when it does not, each row fills the table exactly.
        Assert.All(together.Zip([shortPrompt, longPrompt]), p => Assert.True(p.Second.Count + p.First.Tokens.Count <= Positions));
    }
}
