using System.Text;
using ModelCompression.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Graph;

/// <summary>What an operator kernel sees when it runs one ONNX node.</summary>
/// <param name="Node">The node, for its attributes.</param>
/// <param name="Inputs">The node's input tensors in order; null where an optional input is empty.</param>
/// <param name="Training">True in training mode (Dropout drops, BatchNorm uses batch statistics).</param>
public sealed record OpContext(NodeProto Node, IReadOnlyList<Tensor?> Inputs, bool Training)
{
    /// <summary>The version of the default ONNX domain the model imports; attribute-versus-input forms depend on it.</summary>
    public long Opset { get; init; } = 21;

    /// <summary>
    /// The element type ONNX FLOAT maps to: float32 normally, float64 when the module was converted with
    /// <c>to(float64)</c> (e.g. for gradient checks), so Cast and constants follow the module.
    /// </summary>
    public ScalarType FloatType { get; init; } = ScalarType.Float32;

    /// <summary>
    /// The random stream of the graph being run (Dropout's masks). Per graph, not torch's global generator, so that
    /// another model training on another thread of the same process cannot change what this one draws.
    /// </summary>
    public Generator? Random { get; init; }

    /// <summary>The input at <paramref name="index"/>; throws if it is missing.</summary>
    public Tensor Input(int index) =>
        index < Inputs.Count && Inputs[index] is Tensor tensor
            ? tensor
            : throw new InvalidOperationException($"Node '{Node.Name}' ({Node.OpType}) needs input {index}.");

    /// <summary>The optional input at <paramref name="index"/>, or null.</summary>
    public Tensor? OptionalInput(int index) => index < Inputs.Count ? Inputs[index] : null;

    /// <summary>The integer values of the input at <paramref name="index"/> (shapes, axes, pads), copied to the host.</summary>
    public long[] InputLongs(int index) => OpMath.Longs(Input(index));

    /// <summary>The integer values of an optional input, or null when it is absent.</summary>
    public long[]? OptionalInputLongs(int index) => OptionalInput(index) is Tensor t ? OpMath.Longs(t) : null;

    /// <summary>True when the node declares output <paramref name="index"/> with a name (optional outputs are empty names).</summary>
    public bool WantsOutput(int index) => index < Node.Output.Count && Node.Output[index].Length > 0;

    /// <summary>True when the node sets attribute <paramref name="name"/>.</summary>
    public bool Has(string name) => Attribute(name) is not null;

    /// <summary>An int attribute, or <paramref name="fallback"/> when the node does not set it.</summary>
    public long Int(string name, long fallback) => Attribute(name)?.I ?? fallback;

    /// <summary>A float attribute, or <paramref name="fallback"/> when the node does not set it.</summary>
    public float Float(string name, float fallback) => Attribute(name)?.F ?? fallback;

    /// <summary>An ints attribute, or null when the node does not set it.</summary>
    public long[]? Ints(string name) => Attribute(name)?.Ints.ToArray();

    /// <summary>A floats attribute, or null when the node does not set it.</summary>
    public float[]? Floats(string name) => Attribute(name)?.Floats.ToArray();

    /// <summary>A string attribute (UTF-8), or <paramref name="fallback"/> when the node does not set it.</summary>
    public string String(string name, string fallback) =>
        Attribute(name) is AttributeProto a ? Encoding.UTF8.GetString(a.S.Span) : fallback;

    /// <summary>A tensor attribute, or null when the node does not set it.</summary>
    public TensorProto? TensorAttribute(string name) => Attribute(name)?.T;

    /// <summary>An error about this node, for attribute values the kernel does not support.</summary>
    public NotSupportedException Unsupported(string what) =>
        new($"Node '{Node.Name}' ({Node.OpType}): {what} is not supported.");

    private AttributeProto? Attribute(string name)
    {
        foreach (var attribute in Node.Attribute)
        {
            if (attribute.Name == name)
            {
                return attribute;
            }
        }

        return null;
    }
}

/// <summary>Runs one ONNX node with TorchSharp ops, so autograd flows through it.</summary>
public delegate Tensor[] OpKernel(OpContext context);
