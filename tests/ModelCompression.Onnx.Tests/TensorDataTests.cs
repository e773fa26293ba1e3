using Google.Protobuf;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;
using DataType = ModelCompression.Onnx.Proto.TensorProto.Types.DataType;

namespace ModelCompression.Onnx.Tests;

public sealed class TensorDataTests
{
    [Fact]
    public void Arrays_round_trip_through_raw_data_for_every_supported_type()
    {
        Assert.Equal([1.5f, -2f, float.MaxValue, 0f], TensorData.ToFloats(TensorData.FromFloats("f", [1.5f, -2f, float.MaxValue, 0f], [2, 2])));
        Assert.Equal([1.5, -2.25], TensorData.ToDoubles(TensorData.FromDoubles("d", [1.5, -2.25])));
        Assert.Equal([long.MinValue, 3L], TensorData.ToInt64s(TensorData.FromInt64s("l", [long.MinValue, 3L])));
        Assert.Equal([int.MinValue, 3], TensorData.ToInt32s(TensorData.FromInt32s("i", [int.MinValue, 3])));
        Assert.Equal([(sbyte)-128, (sbyte)127], TensorData.ToInt8s(TensorData.FromInt8s("s", [-128, 127])));
        Assert.Equal([(byte)0, (byte)255], TensorData.ToUInt8s(TensorData.FromUInt8s("u", [0, 255])));
        Assert.Equal([true, false, true], TensorData.ToBools(TensorData.FromBools("b", [true, false, true])));
        Assert.Equal([(Half)1.5f, (Half)(-0.25f)], TensorData.ToHalves(TensorData.FromHalves("h", [(Half)1.5f, (Half)(-0.25f)])));
    }

    [Fact]
    public void Raw_data_is_little_endian()
    {
        var tensor = TensorData.FromFloats("f", [1f]);
        Assert.Equal(new byte[] { 0x00, 0x00, 0x80, 0x3F }, tensor.RawData.ToByteArray());
        Assert.Equal((int)DataType.Float, tensor.DataType);
        Assert.Equal([1L], tensor.Dims);
    }

    [Fact]
    public void Typed_fields_are_read_as_the_spec_assigns_them()
    {
        var floats = new TensorProto { DataType = (int)DataType.Float, Dims = { 2 }, FloatData = { 1f, 2f } };
        Assert.Equal([1f, 2f], TensorData.ToFloats(floats));

        var int64s = new TensorProto { DataType = (int)DataType.Int64, Dims = { 2 }, Int64Data = { -5, 6 } };
        Assert.Equal([-5L, 6L], TensorData.ToInt64s(int64s));

        var int8s = new TensorProto { DataType = (int)DataType.Int8, Dims = { 2 }, Int32Data = { -3, 4 } };
        Assert.Equal([(sbyte)-3, (sbyte)4], TensorData.ToInt8s(int8s));

        var bools = new TensorProto { DataType = (int)DataType.Bool, Dims = { 2 }, Int32Data = { 1, 0 } };
        Assert.Equal([true, false], TensorData.ToBools(bools));

        // FLOAT16 values are stored as their bit patterns in int32_data.
        var halves = new TensorProto { DataType = (int)DataType.Float16, Dims = { 1 }, Int32Data = { BitConverter.HalfToInt16Bits((Half)2.5f) } };
        Assert.Equal([(Half)2.5f], TensorData.ToHalves(halves));

        // Typed data converts to the same raw bytes as raw_data would hold.
        Assert.Equal(TensorData.FromFloats("x", [1f, 2f]).RawData.ToByteArray(), TensorData.GetBytes(floats).ToArray());
    }

    [Fact]
    public void Element_counts_and_sizes()
    {
        Assert.Equal(1, TensorData.ElementCount(Array.Empty<long>()));
        Assert.Equal(24, TensorData.ElementCount([2, 3, 4]));
        Assert.Equal(0, TensorData.ElementCount([2, 0]));
        Assert.Throws<ArgumentException>(() => TensorData.ElementCount([-1]));
        Assert.Throws<ArgumentException>(() => TensorData.ElementCount([long.MaxValue, 2]));

        Assert.Equal(4, TensorData.ElementSize(DataType.Float));
        Assert.Equal(8, TensorData.ElementSize(DataType.Int64));
        Assert.Equal(2, TensorData.ElementSize(DataType.Float16));
        Assert.Equal(1, TensorData.ElementSize(DataType.Bool));
        Assert.Equal(16, TensorData.ElementSize(DataType.Complex128));
        Assert.Null(TensorData.ElementSize(DataType.String));
        Assert.Equal(3, TensorData.ByteCount(DataType.Int4, 5));
        Assert.Equal(20, TensorData.ByteCount(DataType.Float, 5));
    }

    [Fact]
    public void Wrong_type_length_mismatch_and_unloaded_external_data_are_refused()
    {
        Assert.Throws<ArgumentException>(() => TensorData.ToInt64s(TensorData.FromFloats("f", [1f])));
        Assert.Throws<ArgumentException>(() => TensorData.FromFloats("f", [1f, 2f], [3]));

        var shortTensor = new TensorProto { Name = "w", DataType = (int)DataType.Float, Dims = { 3 }, RawData = ByteString.CopyFrom(new byte[8]) };
        var error = Assert.Throws<CompressionException>(() => TensorData.ToFloats(shortTensor));
        Assert.Equal(DiagnosticCodes.ModelInvalid, error.Code);

        var external = new TensorProto { Name = "e", DataType = (int)DataType.Float, Dims = { 1 }, DataLocation = TensorProto.Types.DataLocation.External };
        Assert.True(TensorData.IsExternal(external));
        Assert.Throws<InvalidOperationException>(() => TensorData.ToFloats(external));
    }

    [Fact]
    public void From_bytes_checks_the_length()
    {
        var tensor = TensorData.FromBytes("q", DataType.Uint4, [0x21, 0x03], [3]);
        Assert.Equal([(byte)0x21, (byte)0x03], TensorData.GetBytes(tensor).ToArray());
        Assert.Throws<ArgumentException>(() => TensorData.FromBytes("q", DataType.Float, [1, 2, 3], [1]));
    }
}
