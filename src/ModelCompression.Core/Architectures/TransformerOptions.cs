using ModelCompression.Common;

namespace ModelCompression.Architectures;

/// <summary>How a token model turns its per-token vectors into one per sequence.</summary>
public enum TokenPooling
{
    /// <summary>The first position's vector (a [CLS] token the tokenizer puts first).</summary>
    Cls,

    /// <summary>The mean over positions whose attention mask is 1; padding is ignored.</summary>
    Mean,
}

/// <summary>Options of the built-in Transformer encoder text classifier (registry name <c>transformer</c>).</summary>
public sealed record TransformerOptions : IArchitectureOptions
{
    /// <summary>Vocabulary size; 0 takes it from the data or teacher.</summary>
    [Option("vocab_size", "Number of token ids (rows of embedding.weight); 0 takes it from the data or teacher.", Min = 0)]
    public int VocabSize { get; init; }

    /// <summary>Model width (d_model).</summary>
    [Option("width", "Width of every token vector (d_model); a multiple of heads.", Min = 1)]
    public int Width { get; init; } = 128;

    /// <summary>Attention heads per layer.</summary>
    [Option("heads", "Attention heads per layer; width must divide evenly among them.", Min = 1)]
    public int Heads { get; init; } = 4;

    /// <summary>Encoder layers.</summary>
    [Option("layers", "Number of encoder layers.", Min = 1)]
    public int Layers { get; init; } = 2;

    /// <summary>Hidden width of each layer's feed-forward block.</summary>
    [Option("feed_forward", "Hidden width of each layer's feed-forward block (often 4 x width).", Min = 1)]
    public int FeedForward { get; init; } = 512;

    /// <summary>Longest sequence; 0 takes the data's sequence length.</summary>
    [Option("max_length", "Longest sequence the position embeddings cover; 0 takes the data's sequence length.", Min = 0)]
    public int MaxLength { get; init; }

    /// <summary>Sequence pooling before the classifier.</summary>
    [Option("pooling", "How token vectors become one per sequence: cls (the first token) or mean (over unpadded tokens).")]
    public TokenPooling Pooling { get; init; } = TokenPooling.Mean;

    /// <summary>Feed-forward activation.</summary>
    [Option("activation", "Feed-forward activation: gelu (exact, Erf-based) or relu.")]
    public Activation Activation { get; init; } = Activation.Gelu;

    /// <summary>Dropout on embeddings, sublayer outputs and before the classifier (training only).</summary>
    [Option("dropout", "Dropout probability on the embeddings, each attention and feed-forward output and before the classifier, applied only while training.", Min = 0, Max = 0.99)]
    public double Dropout { get; init; } = 0.1;

    /// <summary>Seed of the initial weights.</summary>
    [Option("seed", "Seed of the initial weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The vocabulary size in effect.</summary>
    internal int ResolveVocab(ArchitectureInputs inputs) => VocabSize > 0 ? VocabSize : inputs.VocabSize;

    /// <summary>The longest sequence in effect.</summary>
    internal int ResolveMaxLength(ArchitectureInputs inputs) =>
        MaxLength > 0 ? MaxLength : inputs.SampleShape is { Count: 1 } s ? s[0] : 0;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(ArchitectureInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        List<string> problems = [];
        Checks.NotNegative(problems, "vocab_size", VocabSize);
        Checks.AtLeast(problems, "width", Width, 1);
        Checks.AtLeast(problems, "heads", Heads, 1);
        Checks.AtLeast(problems, "layers", Layers, 1);
        Checks.AtLeast(problems, "feed_forward", FeedForward, 1);
        Checks.NotNegative(problems, "max_length", MaxLength);
        Checks.Probability(problems, "dropout", Dropout);
        Checks.NotNegative(problems, "seed", Seed);
        if (Width >= 1 && Heads >= 1 && Width % Heads != 0)
        {
            problems.Add($"width ({Width}) must be divisible by heads ({Heads})");
        }

        if (Activation is not (Activation.Gelu or Activation.Relu))
        {
            problems.Add($"activation must be gelu or relu (got {Activation.ToString().ToLowerInvariant()})");
        }

        if (!Enum.IsDefined(Pooling))
        {
            problems.Add($"pooling {(int)Pooling} is not one of cls, mean");
        }

        TokenChecks.VocabAndLength(problems, VocabSize, inputs, ResolveVocab(inputs), MaxLength, ResolveMaxLength(inputs), needLength: true);
        return problems;
    }
}

/// <summary>Checks shared by the token models.</summary>
internal static class TokenChecks
{
    public static void VocabAndLength(List<string> problems, int vocabOption, ArchitectureInputs inputs, int vocab, int lengthOption, int length, bool needLength)
    {
        if (vocabOption >= 0 && vocab < 1)
        {
            problems.Add("vocab_size is 0 and the data does not tell the vocabulary size: give vocab_size");
        }

        if (needLength && lengthOption >= 0 && length < 1)
        {
            problems.Add($"max_length is 0 and samples of shape [{string.Join(", ", inputs.SampleShape ?? [])}] do not tell the sequence length: give max_length");
        }

        if (inputs.SampleShape is { Count: > 1 } shape)
        {
            problems.Add($"token models take samples of shape [sequence length], not [{string.Join(", ", shape)}]");
        }

        if (needLength && length >= 1 && inputs.SampleShape is { Count: 1 } s && s[0] > length)
        {
            problems.Add($"max_length ({length}) is shorter than the data's sequences ({s[0]})");
        }
    }
}
