namespace ModelCompression.Onnx;

/// <summary>How <see cref="OnnxModelFile.Load"/> reads a model.</summary>
public sealed record OnnxLoadOptions
{
    /// <summary>
    /// Read external tensor data into <c>raw_data</c> and clear the external fields, so the model in memory
    /// is self-contained (default). When false, locations are still checked (inside the model folder, file
    /// present and long enough) but the tensors stay external and hold no data.
    /// </summary>
    public bool LoadExternalData { get; init; } = true;

    /// <summary>Refuse IR versions and default-domain opsets outside <see cref="OnnxVersions"/> (MC2005). Default true.</summary>
    public bool CheckVersions { get; init; } = true;
}
