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
    /// <summary>The input at <paramref name="index"/>; throws if it is missing.</summary>
    public Tensor Input(int index) =>
        index < Inputs.Count && Inputs[index] is Tensor tensor
            ? tensor
            : throw new InvalidOperationException($"Node '{Node.Name}' ({Node.OpType}) needs input {index}.");

    /// <summary>The optional input at <paramref name="index"/>, or null.</summary>
    public Tensor? OptionalInput(int index) => index < Inputs.Count ? Inputs[index] : null;

    /// <summary>An int attribute, or <paramref name="fallback"/> when the node does not set it.</summary>
    public long Int(string name, long fallback) => Attribute(name)?.I ?? fallback;

    /// <summary>A float attribute, or <paramref name="fallback"/> when the node does not set it.</summary>
    public float Float(string name, float fallback) => Attribute(name)?.F ?? fallback;

    /// <summary>An ints attribute, or null when the node does not set it.</summary>
    public long[]? Ints(string name) => Attribute(name)?.Ints.ToArray();

    private AttributeProto? Attribute(string name) => Node.Attribute.FirstOrDefault(a => a.Name == name);
}

/// <summary>Runs one ONNX node with TorchSharp ops, so autograd flows through it.</summary>
public delegate Tensor[] OpKernel(OpContext context);
