namespace ModelCompression.Onnx;

/// <summary>The IR versions and default-domain opsets the engine reads and writes.</summary>
public static class OnnxVersions
{
    /// <summary>Oldest supported IR version (7: ONNX 1.8).</summary>
    public const long MinIrVersion = 7;

    /// <summary>Newest supported IR version (11: ONNX 1.18; its multi-device fields are kept as unknown fields).</summary>
    public const long MaxIrVersion = 11;

    /// <summary>Oldest supported opset of the default domain ("" or "ai.onnx").</summary>
    public const long MinOpset = 13;

    /// <summary>Newest supported opset of the default domain.</summary>
    public const long MaxOpset = 21;

    /// <summary>IR version the graph builder writes by default (ONNX 1.12, what PyTorch exports).</summary>
    public const long DefaultIrVersion = 8;

    /// <summary>Opset the graph builder writes by default.</summary>
    public const long DefaultOpset = 17;

    /// <summary>True for the default ONNX domain, which may be written "" or "ai.onnx".</summary>
    public static bool IsDefaultDomain(string? domain) => string.IsNullOrEmpty(domain) || domain == "ai.onnx";
}
