using ModelCompression.Common;

namespace ModelCompression.Stages;

/// <summary>The optimize stage: ONNX Runtime's graph optimizer, run offline, its result checked against the input model.</summary>
public sealed class OptimizeDescriptor : StageDescriptor<OptimizeOptions>
{
    /// <inheritdoc />
    public override string Kind => "optimize";

    /// <inheritdoc />
    protected override StageReads Reads(OptimizeOptions options) => StageReads.Train | StageReads.Test;

    /// <inheritdoc />
    protected override bool ChangesGraph(OptimizeOptions options) => true;

    /// <inheritdoc />
    protected override void AddToKey(ContentHash key, OptimizeOptions options, StageContext context) =>
        new OptimizeStage(options).AddToKey(key, context);

    /// <inheritdoc />
    protected override IStage Create(OptimizeOptions options, StageSite site) => new OptimizeStage(options);
}
