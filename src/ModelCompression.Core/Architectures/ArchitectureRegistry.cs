using ModelCompression.Onnx.Proto;

namespace ModelCompression.Architectures;

/// <summary>A built-in student architecture: its recipe name, options record and graph builder.</summary>
/// <param name="Name">The recipe name (<c>student: { architecture: NAME }</c>).</param>
/// <param name="Description">One sentence for help and docs.</param>
/// <param name="OptionsType">
/// The options record: a parameterless constructor gives the defaults, every recipe option carries an
/// <see cref="Common.OptionAttribute"/>, and it implements <see cref="IArchitectureOptions"/>.
/// </param>
/// <param name="TakesTokens">True when the graph takes <c>input_ids</c> (and <c>attention_mask</c>) rather than a float <c>input</c>.</param>
public sealed record ArchitectureInfo(string Name, string Description, Type OptionsType, bool TakesTokens)
{
    internal Func<IArchitectureOptions, ArchitectureInputs, ModelProto> Builder { get; init; } = null!;

    /// <summary>The options record with every default.</summary>
    public IArchitectureOptions CreateDefaultOptions() => (IArchitectureOptions)Activator.CreateInstance(OptionsType)!;
}

/// <summary>
/// The built-in student architectures by name, for the recipe loader: look up the options type, bind the
/// recipe's keys to it, <see cref="IArchitectureOptions.Validate"/>, then <see cref="Build"/>.
/// </summary>
public static class ArchitectureRegistry
{
    private static readonly ArchitectureInfo[] Architectures =
    [
        Entry<MlpOptions>(MlpBuilder.Name, "Multi-layer perceptron over flattened samples (Gemm + activation per layer).", false, MlpBuilder.Build),
        Entry<CnnOptions>(CnnBuilder.Name, "Image CNN: Conv -> BatchNorm -> ReLU -> pool blocks, then a global-average-pool or flatten head.", false, CnnBuilder.Build),
        Entry<TransformerOptions>(TransformerBuilder.Name, "Pre-LayerNorm Transformer encoder text classifier over token ids with an attention mask.", true, TransformerBuilder.Build),
        Entry<TextCnnOptions>(TextCnnBuilder.Name, "Text CNN over token ids: embedding, parallel 1-D convolutions, max over time.", true, TextCnnBuilder.Build),
        Entry<EmbeddingBagOptions>(EmbeddingBagBuilder.Name, "Embedding bag over token ids: the mean of unpadded token embeddings, then Gemm layers.", true, EmbeddingBagBuilder.Build),
        Entry<DecoderOptions>(DecoderBuilder.Name, "GPT-style decoder (causal language model): pre-LayerNorm causal attention layers, learned or rotary positions, a KV cache, logits over the vocabulary.", true, DecoderBuilder.Build),
    ];

    /// <summary>Every built-in architecture, in a fixed order.</summary>
    public static IReadOnlyList<ArchitectureInfo> All => Architectures;

    /// <summary>The registry names, in the order of <see cref="All"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Architectures.Select(a => a.Name)];

    /// <summary>The architecture called <paramref name="name"/> (case-insensitive), if there is one.</summary>
    public static bool TryGet(string name, out ArchitectureInfo info)
    {
        ArgumentNullException.ThrowIfNull(name);
        info = Architectures.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase))!;
        return info is not null;
    }

    /// <summary>The architecture called <paramref name="name"/>; throws naming the built-in ones when there is none.</summary>
    public static ArchitectureInfo Get(string name) =>
        TryGet(name, out var info)
            ? info
            : throw new ArgumentException($"'{name}' is not a built-in architecture. Built-in: {string.Join(", ", Names)}.", nameof(name));

    /// <summary>
    /// Builds <paramref name="name"/> from <paramref name="options"/> (its options record, or null for the
    /// defaults) for <paramref name="inputs"/>. Throws <see cref="InvalidArchitectureOptionsException"/>
    /// listing every problem when the options or inputs are invalid.
    /// </summary>
    public static ModelProto Build(string name, object? options, ArchitectureInputs inputs)
    {
        var info = Get(name);
        ArgumentNullException.ThrowIfNull(inputs);
        options ??= info.CreateDefaultOptions();
        if (options.GetType() != info.OptionsType)
        {
            throw new ArgumentException(
                $"The '{info.Name}' architecture takes {info.OptionsType.Name}, not {options.GetType().Name}.", nameof(options));
        }

        return info.Builder((IArchitectureOptions)options, inputs);
    }

    private static ArchitectureInfo Entry<TOptions>(string name, string description, bool takesTokens, Func<TOptions, ArchitectureInputs, ModelProto> build)
        where TOptions : IArchitectureOptions, new() =>
        new(name, description, typeof(TOptions), takesTokens) { Builder = (options, inputs) => build((TOptions)options, inputs) };
}
