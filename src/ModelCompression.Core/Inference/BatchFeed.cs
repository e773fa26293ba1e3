using Microsoft.ML.OnnxRuntime;
using ModelCompression.Data;

namespace ModelCompression.Inference;

/// <summary>
/// Copies chosen samples of the bound data tensors into ONNX Runtime input tensors. Batches of the full
/// size reuse one array per input; ONNX Runtime takes a whole array as the tensor, so a smaller (last)
/// batch gets arrays of its own.
/// </summary>
internal sealed class BatchFeed(IReadOnlyList<InputBinding> bindings, Dataset data, int batchSize)
{
    private readonly DataTensor[] _tensors = [.. bindings.Select(b => data.Tensor(b.Tensor)!)];
    private readonly float[]?[] _floats = new float[bindings.Count][];
    private readonly long[]?[] _longs = new long[bindings.Count][];

    /// <summary>The model inputs fed, in the order <see cref="Fill"/> returns their values.</summary>
    public string[] Names { get; } = [.. bindings.Select(b => b.Input)];

    /// <summary>One value per input holding <paramref name="rows"/>; the caller frees them (<see cref="Free"/>).</summary>
    public OrtValue[] Fill(ReadOnlySpan<int> rows)
    {
        var size = rows.Length;
        var values = new OrtValue[bindings.Count];
        try
        {
            for (var i = 0; i < bindings.Count; i++)
            {
                long[] shape = [size, .. bindings[i].SampleShape];
                var length = size * _tensors[i].SampleSize;
                if (bindings[i].ElementType == DataElementType.Float32)
                {
                    var buffer = size == batchSize ? _floats[i] ??= new float[length] : new float[length];
                    _tensors[i].CopyRows(rows, buffer);
                    values[i] = OrtValue.CreateTensorValueFromMemory(buffer, shape);
                }
                else
                {
                    var buffer = size == batchSize ? _longs[i] ??= new long[length] : new long[length];
                    _tensors[i].CopyRows(rows, buffer);
                    values[i] = OrtValue.CreateTensorValueFromMemory(buffer, shape);
                }
            }
        }
        catch
        {
            Free(values);
            throw;
        }

        return values;
    }

    public static void Free(OrtValue[] values)
    {
        foreach (var value in values)
        {
            value?.Dispose();
        }
    }
}
