using System.Globalization;
using ModelCompression.Common;

namespace ModelCompression.Architectures;

/// <summary>How the built-in decoder tells positions apart.</summary>
public enum PositionEncoding
{
    /// <summary>A learned table <c>position_embedding.weight</c> [max_length, width] added to the token embeddings (GPT-2).</summary>
    Learned,

    /// <summary>
    /// Rotary embeddings (RoPE, GPT-NeoX/Llama's rotate-half form) on queries and keys: no weights, and attention scores
    /// depend only on relative positions.
    /// </summary>
    Rope,
}

/// <summary>Options of the built-in GPT-style decoder (registry name <c>decoder</c>); see <see cref="DecoderBuilder"/>.</summary>
public sealed record DecoderOptions : IArchitectureOptions
{
    /// <summary>Vocabulary size; 0 takes it from the tokenizer or teacher.</summary>
    [Option("vocab_size", "Number of token ids (rows of embedding.weight, width of the logits); 0 takes it from the tokenizer or teacher.", Min = 0)]
    public int VocabSize { get; init; }

    /// <summary>Longest sequence (prompt and generated tokens together); 0 takes the data's sequence length.</summary>
    [Option("max_length", "Longest sequence, prompt and generated tokens together: rows of the position table (learned) or of the rotary tables (rope); 0 takes the data's sequence length.", Min = 0)]
    public int MaxLength { get; init; }

    /// <summary>Model width (d_model).</summary>
    [Option("width", "Width of every token vector (d_model); a multiple of heads.", Min = 1)]
    public int Width { get; init; } = 128;

    /// <summary>Attention heads per layer.</summary>
    [Option("heads", "Attention heads per layer; width must divide evenly among them (and into an even head width with rope).", Min = 1)]
    public int Heads { get; init; } = 4;

    /// <summary>Decoder layers.</summary>
    [Option("layers", "Number of decoder layers.", Min = 1)]
    public int Layers { get; init; } = 4;

    /// <summary>Hidden width of each layer's feed-forward block.</summary>
    [Option("feed_forward", "Hidden width of each layer's feed-forward block (often 4 x width).", Min = 1)]
    public int FeedForward { get; init; } = 512;

    /// <summary>Position encoding.</summary>
    [Option("positions", "How positions are encoded: learned (a trained table added to the token embeddings, as GPT-2) or rope (rotary embeddings on queries and keys, as Llama).")]
    public PositionEncoding Positions { get; init; } = PositionEncoding.Learned;

    /// <summary>RoPE base (theta).</summary>
    [Option("rope_base", "Base of the rotary frequencies (theta; Llama uses 10000); used with positions: rope.", Min = 1, MinExclusive = true)]
    public double RopeBase { get; init; } = 10000;

    /// <summary>Feed-forward activation.</summary>
    [Option("activation", "Feed-forward activation: gelu (exact, Erf-based) or relu.")]
    public Activation Activation { get; init; } = Activation.Gelu;

    /// <summary>Dropout on embeddings and sublayer outputs (training only).</summary>
    [Option("dropout", "Dropout probability on the embeddings and each attention and feed-forward output, applied only while training.", Min = 0, Max = 0.99)]
    public double Dropout { get; init; } = 0.1;

    /// <summary>Whether the output head reuses the token embedding table.</summary>
    [Option("tie_embeddings", "Whether the output head reuses the token embedding table (logits = x times embedding.weight transposed, as GPT-2); false adds lm_head.weight [width, vocab].")]
    public bool TieEmbeddings { get; init; } = true;

    /// <summary>Seed of the initial weights.</summary>
    [Option("seed", "Seed of the initial weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The width of one attention head.</summary>
    public int HeadWidth => Heads > 0 ? Width / Heads : 0;

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
        else if (Positions == PositionEncoding.Rope && Width >= 1 && Heads >= 1 && HeadWidth % 2 != 0)
        {
            // Rotate-half pairs dimension i with i + head_width / 2.
            problems.Add($"positions: rope needs an even head width, and width / heads = {Width} / {Heads} = {HeadWidth} is odd");
        }

        if (!Enum.IsDefined(Positions))
        {
            problems.Add($"positions {(int)Positions} is not one of learned, rope");
        }

        if (!(RopeBase > 1) || double.IsInfinity(RopeBase))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"rope_base must be a finite number above 1 (got {RopeBase})"));
        }

        if (Activation is not (Activation.Gelu or Activation.Relu))
        {
            problems.Add($"activation must be gelu or relu (got {Activation.ToString().ToLowerInvariant()})");
        }

        TokenChecks.VocabAndLength(problems, VocabSize, inputs, ResolveVocab(inputs), MaxLength, ResolveMaxLength(inputs), needLength: true);
        return problems;
    }
}
