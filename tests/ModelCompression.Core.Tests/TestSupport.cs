using System.Buffers.Binary;
using System.IO.Compression;

namespace ModelCompression.Core.Tests;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Join(System.IO.Path.GetTempPath(), "mc-core-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Join(Path, name);

    public string Dir(string name) => Directory.CreateDirectory(File(name)).FullName;

    public string Write(string name, string text)
    {
        var path = File(name);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(path)!);
        System.IO.File.WriteAllText(path, text);
        return path;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort on shared machines.
        }
    }
}

/// <summary>Files of the repository the tests read (the sample recipe, its data and teacher).</summary>
internal static class Repo
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (System.IO.File.Exists(Path.Join(dir.FullName, "samples", "FashionMnist", "fashion.compress.yaml")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No repository root above {AppContext.BaseDirectory}.");
    });

    public static string Root => RootPath.Value;

    public static string Sample => Path.Join(Root, "samples", "FashionMnist");

    public static string SampleRecipe => Path.Join(Sample, "fashion.compress.yaml");

    public static string SampleData(string name) => Path.Join(Sample, "data", name);

    public static string Teacher => Path.Join(Sample, "teacher", "teacher.onnx");
}

/// <summary>Writes unsigned-byte IDX files (big-endian header 0x00 0x00 0x08 rank, then the dimensions, then the bytes).</summary>
internal static class Idx
{
    public static byte[] Encode(int[] dims, ReadOnlySpan<byte> data, byte elementType = 0x08)
    {
        var bytes = new byte[4 + (4 * dims.Length) + data.Length];
        bytes[2] = elementType;
        bytes[3] = (byte)dims.Length;
        for (var i = 0; i < dims.Length; i++)
        {
            BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(4 + (4 * i)), dims[i]);
        }

        data.CopyTo(bytes.AsSpan(4 + (4 * dims.Length)));
        return bytes;
    }

    /// <summary>Writes an IDX file; gzip-compressed when the name ends in .gz.</summary>
    public static string Write(string path, int[] dims, ReadOnlySpan<byte> data) => WriteBytes(path, Encode(dims, data));

    public static string WriteBytes(string path, byte[] bytes)
    {
        if (path.EndsWith(".gz", StringComparison.Ordinal))
        {
            using var file = System.IO.File.Create(path);
            using var gzip = new GZipStream(file, CompressionLevel.Fastest);
            gzip.Write(bytes);
        }
        else
        {
            System.IO.File.WriteAllBytes(path, bytes);
        }

        return path;
    }
}
