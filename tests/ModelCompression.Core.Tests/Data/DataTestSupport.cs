using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using ModelCompression.Data;
using ModelCompression.Recipes;

namespace ModelCompression.Core.Tests.Data;

/// <summary>The committed data fixtures: NPY/NPZ written by numpy, the SpamAssassin slice, a tiny BERT vocabulary.</summary>
internal static class Fixtures
{
    public static string Npy(string name) => Path.Join(Repo.Root, "tests", "fixtures", "npy", name);

    public static string Text(string name) => Path.Join(Repo.Root, "tests", "fixtures", "text", name);

    /// <summary>The value make_npy.py stores at C-order index <paramref name="i"/> for a dtype kind.</summary>
    public static double Expected(char kind, int i) => kind switch
    {
        'f' => (i * 0.5) - 3,
        'i' => i - 5,
        'b' => i % 2,
        _ => i,
    };
}

/// <summary>Writes little-endian C-order NPY files (version 1) in tests.</summary>
internal static class Npy
{
    public static string Header(string descr, long[] shape, bool fortran = false)
    {
        var dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        return $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': ({dims}), }}";
    }

    /// <summary>Magic, version 1, the header padded so the data starts at a multiple of 64, then <paramref name="data"/>.</summary>
    public static byte[] Encode(string header, ReadOnlySpan<byte> data)
    {
        var length = 10 + header.Length + 1;
        var padded = header + new string(' ', (64 - (length % 64)) % 64) + "\n";
        var bytes = new byte[10 + padded.Length + data.Length];
        bytes[0] = 0x93;
        Encoding.ASCII.GetBytes("NUMPY").CopyTo(bytes, 1);
        bytes[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)padded.Length);
        Encoding.ASCII.GetBytes(padded).CopyTo(bytes, 10);
        data.CopyTo(bytes.AsSpan(10 + padded.Length));
        return bytes;
    }

    public static string WriteFloats(string path, float[] values, params long[] shape)
    {
        File.WriteAllBytes(path, Encode(Header("<f4", shape), System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));
        return path;
    }

    public static string WriteLongs(string path, long[] values, params long[] shape)
    {
        File.WriteAllBytes(path, Encode(Header("<i8", shape), System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan())));
        return path;
    }
}

/// <summary>Loads a recipe's data from a data section written in a test folder.</summary>
internal static class DataRecipe
{
    /// <summary>Writes a recipe with <paramref name="dataSection"/> (indented under data:) and an existing teacher file.</summary>
    public static string Write(TempDir dir, string dataSection, string name = "data.compress.yaml")
    {
        if (!File.Exists(dir.File("teacher.onnx")))
        {
            File.WriteAllBytes(dir.File("teacher.onnx"), [0]);
        }

        var indented = string.Join("\n", dataSection.Trim('\n').Split('\n').Select(l => "  " + l));
        return dir.Write(name, $"data:\n{indented}\nteacher: teacher.onnx\nstudent: {{ architecture: mlp, hidden: [8] }}\nstages: [distill]\n");
    }

    public static DataSpec Spec(TempDir dir, string dataSection) => RecipeLoader.Load(Write(dir, dataSection)).Data;

    public static LoadedData Load(TempDir dir, string dataSection) => DataLoader.Load(Spec(dir, dataSection));

    public static float[] Floats(DataTensor tensor)
    {
        var values = new float[tensor.Count * tensor.SampleSize];
        tensor.CopyRange(0, tensor.Count, values);
        return values;
    }

    public static long[] Longs(DataTensor tensor)
    {
        var values = new long[tensor.Count * tensor.SampleSize];
        tensor.CopyRange(0, tensor.Count, values);
        return values;
    }

    public static string Csv(params string[] lines) => string.Join("\n", lines) + "\n";

    public static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
