using ModelCompression.Common;

namespace ModelCompression.Architectures;

/// <summary>How a CNN turns its last feature map into one vector per sample.</summary>
public enum CnnHead
{
    /// <summary>GlobalAveragePool: one value per channel, independent of the image size.</summary>
    Gap,

    /// <summary>Flatten every position of every channel (more weights, keeps where things are).</summary>
    Flatten,
}

/// <summary>Options of the built-in image CNN (registry name <c>cnn</c>).</summary>
public sealed record CnnOptions : IArchitectureOptions
{
    /// <summary>Output channels of each block.</summary>
    [Option("channels", "Output channels of each convolution block, e.g. [32, 64].")]
    public int[] Channels { get; init; } = [32, 64];

    /// <summary>Square kernel size of every convolution.</summary>
    [Option("kernel_size", "Square kernel size of every convolution ('same' padding keeps the image size).", Min = 1, Max = 15)]
    public int KernelSize { get; init; } = 3;

    /// <summary>Pooling after each block.</summary>
    [Option("pooling", "Pooling after each block, 2x2 stride 2: max, avg or none; one value for all blocks or one per block separated by commas (max,avg).")]
    public string Pooling { get; init; } = "max";

    /// <summary>Whether each block has a BatchNormalization between its Conv and its ReLU.</summary>
    [Option("batch_norm", "Put a BatchNormalization between each block's Conv and ReLU (the Conv then has no bias).")]
    public bool BatchNorm { get; init; } = true;

    /// <summary>The head's first step.</summary>
    [Option("head", "How the last feature map becomes a vector: gap (global average pool) or flatten.")]
    public CnnHead Head { get; init; } = CnnHead.Gap;

    /// <summary>Width of a hidden Gemm + ReLU in the head; 0 for none.</summary>
    [Option("head_hidden", "Width of a hidden Gemm + ReLU layer in the head before the classifier; 0 for none.", Min = 0)]
    public int HeadHidden { get; init; }

    /// <summary>Dropout before the head's Gemm layers (training only).</summary>
    [Option("dropout", "Dropout probability before the head's Gemm layers, applied only while training.", Min = 0, Max = 0.99)]
    public double Dropout { get; init; }

    /// <summary>The image shape [C, H, W] when the data's samples are stored flat or otherwise.</summary>
    [Option("image_shape", "Image shape [channels, height, width] to read each sample as, when the data stores it otherwise (e.g. [1, 28, 28] for 784 values); [] takes the data's shape ([H, W] is one channel).")]
    public int[] ImageShape { get; init; } = [];

    /// <summary>Seed of the initial weights.</summary>
    [Option("seed", "Seed of the initial weights.", Min = 0)]
    public int Seed { get; init; } = 1;

    /// <summary>The pooling of each block, parsed from <see cref="Pooling"/>; null when it does not parse.</summary>
    internal string[]? PoolingPerBlock()
    {
        var blocks = Channels?.Length ?? 0;
        var parts = (Pooling ?? string.Empty).Split(',', StringSplitOptions.TrimEntries);
        if (parts.Any(p => p is not ("max" or "avg" or "none")))
        {
            return null;
        }

        return parts.Length == 1 ? [.. Enumerable.Repeat(parts[0], blocks)] : parts.Length == blocks ? parts : null;
    }

    /// <summary>The [C, H, W] the network sees, or null when it cannot be told.</summary>
    internal int[]? ResolveImageShape(ArchitectureInputs inputs)
    {
        if (ImageShape is { Length: > 0 })
        {
            return ImageShape;
        }

        return inputs.SampleShape switch
        {
            { Count: 3 } s => [s[0], s[1], s[2]],
            { Count: 2 } s => [1, s[0], s[1]],
            _ => null,
        };
    }

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(ArchitectureInputs inputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        List<string> problems = [];
        Checks.List(problems, "channels", Channels, min: 1, allowEmpty: false);
        Checks.AtLeast(problems, "kernel_size", KernelSize, 1);
        Checks.NotNegative(problems, "head_hidden", HeadHidden);
        Checks.Probability(problems, "dropout", Dropout);
        Checks.NotNegative(problems, "seed", Seed);
        if (!Enum.IsDefined(Head))
        {
            problems.Add($"head {(int)Head} is not one of gap, flatten");
        }

        var pooling = PoolingPerBlock();
        if (pooling is null)
        {
            problems.Add($"pooling '{Pooling}' must be max, avg or none, or one of those per block separated by commas ({Channels?.Length ?? 0} blocks)");
        }

        var sample = inputs.SampleShape ?? [];
        var image = ResolveImageShape(inputs);
        if (image is null)
        {
            problems.Add($"samples of shape [{string.Join(", ", sample)}] are not images: give image_shape [channels, height, width]");
        }
        else if (image.Length != 3 || image.Any(d => d < 1))
        {
            problems.Add($"image_shape must be [channels, height, width] with every size at least 1 (got [{string.Join(", ", image)}])");
        }
        else
        {
            var values = sample.Aggregate(1L, (a, b) => a * b);
            var wanted = (long)image[0] * image[1] * image[2];
            if (ImageShape is { Length: > 0 } && values != wanted)
            {
                problems.Add($"image_shape [{string.Join(", ", image)}] holds {wanted} values but a sample of shape [{string.Join(", ", sample)}] holds {values}");
            }

            // Every 2x2 stride-2 pooling halves (rounding down) the image; it must keep a pixel to the end.
            var pools = Math.Min(pooling?.Count(p => p != "none") ?? 0, 30);
            if (image[1] >> pools < 1 || image[2] >> pools < 1)
            {
                problems.Add($"{pools} pooling steps shrink a {image[1]}x{image[2]} image to nothing: use fewer blocks or pooling none");
            }
        }

        return problems;
    }
}
