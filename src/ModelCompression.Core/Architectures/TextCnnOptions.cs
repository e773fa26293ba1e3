using ModelCompression.Common;

namespace ModelCompression.Architectures;

/// <summary>Options of the built-in text CNN (registry name <c>text_cnn</c>), Kim (2014) style.</summary>
public sealed record TextCnnOptions : IArchitectureOptions
{
    /// <summary>Vocabulary size; 0 takes it from the data or teacher.</summary>
    [Option("vocab_size", "Number of token ids (rows of embedding.weight); 0 takes it from the data or teacher.", Min = 0)]
    public int VocabSize { get; init; }

    /// <summary>Width of each token's embedding.</summary>
    [Option("embedding_dim", "Width of each token's embedding.", Min = 1)]
    public int EmbeddingDim { get; init; } = 128;

    /// <summary>Kernel sizes of the parallel 1-D convolutions.</summary>
    [Option("kernel_sizes", "Widths (in tokens) of the parallel 1-D convolutions, each different, e.g. [3, 4, 5].")]
    public int[] KernelSizes { get; init; } = [3, 4, 5];

    /// <summary>Filters per kernel size.</summary>
    [Option("filters", "Output channels of each convolution.", Min = 1)]
    public int Filters { get; init; } = 100;

    /// <summary>Whether the graph takes an attention mask.</summary>
    [Option("use_attention_mask", "Take an attention_mask input and zero padded positions' embeddings, so padding ids never matter.")]
    public bool UseAttentionMask { get; init; } = true;

    /// <summary>Dropout before the classifier (training only).</summary>
    [Option("dropout", "Dropout probability before the classifier, applied only while training.", Min = 0, Max = 0.99)]
    public double Dropout { get; init; } = 0.5;

    /// <summary>Seed of the initial weights.</summary>
    [Option("seed", "Seed of the initial weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The vocabulary size in effect.</summary>
    internal int ResolveVocab(ArchitectureInputs inputs) => VocabSize > 0 ? VocabSize : inputs.VocabSize;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(ArchitectureInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        List<string> problems = [];
        Checks.NotNegative(problems, "vocab_size", VocabSize);
        Checks.AtLeast(problems, "embedding_dim", EmbeddingDim, 1);
        Checks.List(problems, "kernel_sizes", KernelSizes, min: 1, allowEmpty: false);
        if (KernelSizes is not null && KernelSizes.Distinct().Count() != KernelSizes.Length)
        {
            problems.Add($"kernel_sizes must all differ (got [{string.Join(", ", KernelSizes)}])");
        }

        Checks.AtLeast(problems, "filters", Filters, 1);
        Checks.Probability(problems, "dropout", Dropout);
        Checks.NotNegative(problems, "seed", Seed);
        TokenChecks.VocabAndLength(problems, VocabSize, inputs, ResolveVocab(inputs), 0, 0, needLength: false);
        return problems;
    }
}

/// <summary>Options of the built-in embedding-bag classifier (registry name <c>embedding_bag</c>), fastText style.</summary>
public sealed record EmbeddingBagOptions : IArchitectureOptions
{
    /// <summary>Vocabulary size; 0 takes it from the data or teacher.</summary>
    [Option("vocab_size", "Number of token ids (rows of embedding.weight); 0 takes it from the data or teacher.", Min = 0)]
    public int VocabSize { get; init; }

    /// <summary>Width of each token's embedding.</summary>
    [Option("embedding_dim", "Width of each token's embedding.", Min = 1)]
    public int EmbeddingDim { get; init; } = 64;

    /// <summary>Hidden Gemm + ReLU layers between the mean embedding and the classifier.</summary>
    [Option("hidden", "Widths of hidden Gemm + ReLU layers after the mean embedding; [] (the default) is fastText's linear read-out.")]
    public int[] Hidden { get; init; } = [];

    /// <summary>Whether the graph takes an attention mask.</summary>
    [Option("use_attention_mask", "Take an attention_mask input and average only unpadded tokens; without it every position counts.")]
    public bool UseAttentionMask { get; init; } = true;

    /// <summary>Dropout before each Gemm (training only).</summary>
    [Option("dropout", "Dropout probability before each Gemm layer, applied only while training.", Min = 0, Max = 0.99)]
    public double Dropout { get; init; }

    /// <summary>Seed of the initial weights.</summary>
    [Option("seed", "Seed of the initial weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The vocabulary size in effect.</summary>
    internal int ResolveVocab(ArchitectureInputs inputs) => VocabSize > 0 ? VocabSize : inputs.VocabSize;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(ArchitectureInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        List<string> problems = [];
        Checks.NotNegative(problems, "vocab_size", VocabSize);
        Checks.AtLeast(problems, "embedding_dim", EmbeddingDim, 1);
        Checks.List(problems, "hidden", Hidden, min: 1, allowEmpty: true);
        Checks.Probability(problems, "dropout", Dropout);
        Checks.NotNegative(problems, "seed", Seed);
        TokenChecks.VocabAndLength(problems, VocabSize, inputs, ResolveVocab(inputs), 0, 0, needLength: false);
        return problems;
    }
}
