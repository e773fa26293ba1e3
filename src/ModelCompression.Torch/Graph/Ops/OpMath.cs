using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Torch.Graph;

/// <summary>Small helpers shared by the operator kernels.</summary>
internal static class OpMath
{
    /// <summary>The values of an integer (or bool/float) tensor as longs, copied to the host.</summary>
    public static long[] Longs(Tensor tensor)
    {
        // Shapes, axes and pads are int64 constants on the CPU: read in place. The conversion chain makes a tensor
        // per call (kept by the step's dispose scope until the step ends), and a Reshape runs every step.
        if (tensor.device_type == DeviceType.CPU && tensor.dtype == ScalarType.Int64 && tensor.is_contiguous())
        {
            return tensor.data<long>().ToArray();
        }

        using var detached = tensor.detach();
        using var host = detached.cpu().to_type(ScalarType.Int64).contiguous();
        return host.data<long>().ToArray();
    }

    /// <summary>A single scalar value as a double.</summary>
    public static double Double(Tensor tensor)
    {
        using var host = tensor.detach().cpu().to_type(ScalarType.Float64).contiguous();
        return host.data<double>()[0];
    }

    /// <summary>A possibly negative axis made non-negative for a tensor of <paramref name="rank"/> dimensions.</summary>
    public static long Axis(long axis, long rank)
    {
        var normalized = axis < 0 ? axis + rank : axis;
        return normalized >= 0 && normalized < Math.Max(rank, 1)
            ? normalized
            : throw new InvalidOperationException($"Axis {axis} is out of range for rank {rank}.");
    }

    /// <summary>The torch element type of an ONNX element type; FLOAT follows the module's float type.</summary>
    public static ScalarType ToScalarType(long onnxType, ScalarType floatType) => (DataType)onnxType switch
    {
        DataType.Float => floatType,
        DataType.Double => ScalarType.Float64,
        DataType.Float16 => ScalarType.Float16,
        DataType.Bfloat16 => ScalarType.BFloat16,
        DataType.Int64 => ScalarType.Int64,
        DataType.Int32 => ScalarType.Int32,
        DataType.Int16 => ScalarType.Int16,
        DataType.Int8 => ScalarType.Int8,
        DataType.Uint8 => ScalarType.Byte,
        DataType.Bool => ScalarType.Bool,
        var other => throw new NotSupportedException($"ONNX element type {other} is not supported by training."),
    };

    /// <summary>True for the ONNX element types <see cref="ToTorch"/> can read.</summary>
    public static bool CanRead(DataType type) => type is DataType.Float or DataType.Double or DataType.Float16
        or DataType.Int64 or DataType.Int32 or DataType.Int8 or DataType.Uint8 or DataType.Bool;

    /// <summary>An ONNX tensor (initializer or Constant value) as a CPU torch tensor of the same element type.</summary>
    public static Tensor ToTorch(TensorProto proto)
    {
        long[] dims = [.. proto.Dims];
        return (DataType)proto.DataType switch
        {
            DataType.Float => torch.tensor(TensorData.ToFloats(proto), dims),
            DataType.Double => torch.tensor(TensorData.ToDoubles(proto), dims),
            DataType.Float16 => torch.tensor(TensorData.ToHalves(proto).Select(h => (float)h).ToArray(), dims).to_type(ScalarType.Float16),
            DataType.Int64 => torch.tensor(TensorData.ToInt64s(proto), dims),
            DataType.Int32 => torch.tensor(TensorData.ToInt32s(proto), dims),
            DataType.Int8 => torch.tensor(TensorData.ToInt8s(proto).Select(v => (int)v).ToArray(), dims).to_type(ScalarType.Int8),
            DataType.Uint8 => torch.tensor(TensorData.ToUInt8s(proto), dims),
            DataType.Bool => torch.tensor(TensorData.ToBools(proto), dims),
            var other => throw new NotSupportedException($"Tensor '{proto.Name}' has element type {other}, which training does not support."),
        };
    }

    /// <summary>
    /// ONNX pads [x1_begin, x2_begin, ..., x1_end, x2_end] as torch's F.pad list, which starts at the last
    /// dimension: (xn_begin, xn_end, ..., x1_begin, x1_end).
    /// </summary>
    public static long[] TorchPads(long[] onnxPads)
    {
        var n = onnxPads.Length / 2;
        var result = new long[onnxPads.Length];
        for (var i = 0; i < n; i++)
        {
            result[2 * i] = onnxPads[n - 1 - i];
            result[(2 * i) + 1] = onnxPads[(2 * n) - 1 - i];
        }

        return result;
    }

    /// <summary>numpy/ONNX multidirectional broadcasting of two shapes.</summary>
    public static long[] Broadcast(long[] a, long[] b)
    {
        var rank = Math.Max(a.Length, b.Length);
        var result = new long[rank];
        for (var i = 0; i < rank; i++)
        {
            var da = i < rank - a.Length ? 1 : a[i - (rank - a.Length)];
            var db = i < rank - b.Length ? 1 : b[i - (rank - b.Length)];
            result[i] = da == 1 ? db : db == 1 || db == da ? da
                : throw new InvalidOperationException($"Shapes [{string.Join(",", a)}] and [{string.Join(",", b)}] do not broadcast.");
        }

        return result;
    }
}
