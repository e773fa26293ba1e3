namespace ModelCompression.Onnx;

/// <summary>Whether <see cref="OnnxModelFile.Save"/> moves tensor data to a side file.</summary>
public enum ExternalDataMode
{
    /// <summary>
    /// External when the model was loaded from a file that used external data, or when it would not fit the
    /// 2 GB protobuf limit inline; otherwise inline.
    /// </summary>
    Auto,

    /// <summary>Initializers at or above <see cref="OnnxSaveOptions.ExternalDataThreshold"/> bytes go to the side file.</summary>
    Always,

    /// <summary>Everything inline; a model over the 2 GB protobuf limit is refused (MC2002).</summary>
    Never,
}

/// <summary>How <see cref="OnnxModelFile.Save"/> writes a model.</summary>
public sealed record OnnxSaveOptions
{
    /// <summary>The protobuf limit on one serialized message: 2 GB less one byte.</summary>
    public const long ProtobufSizeLimit = int.MaxValue;

    /// <summary>Inline or external tensor data. Default <see cref="ExternalDataMode.Auto"/>.</summary>
    public ExternalDataMode ExternalData { get; init; } = ExternalDataMode.Auto;

    /// <summary>
    /// The side file's name, in the model's folder (a plain file name, no folders). Default
    /// <c>&lt;model file name&gt;.data</c>, e.g. <c>model.onnx.data</c>.
    /// </summary>
    public string? ExternalDataFileName { get; init; }

    /// <summary>Initializers of at least this many bytes go to the side file when data is external. Default 1 KiB.</summary>
    public long ExternalDataThreshold { get; init; } = 1024;

    /// <summary>Each tensor's offset in the side file is a multiple of this (a power of two). Default 64.</summary>
    public int Alignment { get; init; } = 64;

    /// <summary>The size above which a model cannot be written inline. Only tests lower it.</summary>
    internal long InlineSizeLimit { get; init; } = ProtobufSizeLimit;
}
