using System.Text;
using Google.Protobuf;
using ModelCompression.Onnx.Proto;
using AttributeType = ModelCompression.Onnx.Proto.AttributeProto.Types.AttributeType;

namespace ModelCompression.Onnx;

/// <summary>Typed node attributes, for <see cref="GraphBuilder"/>: <c>Attr.Int("transB", 1)</c>.</summary>
public static class Attr
{
    /// <summary>An INT attribute.</summary>
    public static AttributeProto Int(string name, long value) => New(name, AttributeType.Int, a => a.I = value);

    /// <summary>A FLOAT attribute.</summary>
    public static AttributeProto Float(string name, float value) => New(name, AttributeType.Float, a => a.F = value);

    /// <summary>A STRING attribute (UTF-8).</summary>
    public static AttributeProto String(string name, string value) =>
        New(name, AttributeType.String, a => a.S = ByteString.CopyFromUtf8(value));

    /// <summary>An INTS attribute.</summary>
    public static AttributeProto Ints(string name, params long[] values) => New(name, AttributeType.Ints, a => a.Ints.AddRange(values));

    /// <summary>A FLOATS attribute.</summary>
    public static AttributeProto Floats(string name, params float[] values) => New(name, AttributeType.Floats, a => a.Floats.AddRange(values));

    /// <summary>A STRINGS attribute (UTF-8).</summary>
    public static AttributeProto Strings(string name, params string[] values) =>
        New(name, AttributeType.Strings, a => a.Strings.AddRange(values.Select(v => ByteString.CopyFrom(v, Encoding.UTF8))));

    /// <summary>A TENSOR attribute (e.g. Constant's <c>value</c>).</summary>
    public static AttributeProto Tensor(string name, TensorProto value) => New(name, AttributeType.Tensor, a => a.T = value.Clone());

    /// <summary>A GRAPH attribute (e.g. If's <c>then_branch</c>).</summary>
    public static AttributeProto Graph(string name, GraphProto value) => New(name, AttributeType.Graph, a => a.G = value.Clone());

    private static AttributeProto New(string name, AttributeType type, Action<AttributeProto> set)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var attribute = new AttributeProto { Name = name, Type = type };
        set(attribute);
        return attribute;
    }
}
