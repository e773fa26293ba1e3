namespace ModelCompression.Onnx;

/// <summary>
/// What <see cref="OnnxModelFile.Load"/> found external in a model file: enough to write it external again.
/// </summary>
/// <param name="Files">The side files' locations, as the model named them, in first-use order.</param>
/// <param name="TensorNames">The tensors whose data was external.</param>
public sealed record ExternalDataInfo(IReadOnlyList<string> Files, IReadOnlyList<string> TensorNames);
