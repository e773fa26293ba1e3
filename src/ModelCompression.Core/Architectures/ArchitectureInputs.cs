namespace ModelCompression.Architectures;

/// <summary>
/// What a built-in architecture learns from the data and the teacher rather than from its options.
/// </summary>
/// <param name="SampleShape">
/// The shape of one sample without the batch axis: e.g. [784] or [28, 28] for an MLP, [C, H, W] (or [H, W],
/// read as one channel) for a CNN, [sequence length] for the token models (0 when sequences vary).
/// </param>
/// <param name="Classes">Number of classes: the width of the <c>logits</c> output.</param>
/// <param name="VocabSize">Token vocabulary size for the token models (0: unknown; the options must then give it).</param>
public sealed record ArchitectureInputs(IReadOnlyList<int> SampleShape, int Classes, int VocabSize = 0)
{
    /// <summary>Problems with the inputs themselves, one sentence each.</summary>
    internal IEnumerable<string> Problems()
    {
        if (Classes < 1)
        {
            yield return $"the number of classes must be at least 1 (got {Classes})";
        }

        if (SampleShape is null)
        {
            yield return "the sample shape is missing";
        }
        else if (SampleShape.Any(d => d < 0))
        {
            yield return $"the sample shape [{string.Join(", ", SampleShape)}] has a negative dimension";
        }

        if (VocabSize < 0)
        {
            yield return $"the vocabulary size must not be negative (got {VocabSize})";
        }
    }
}
