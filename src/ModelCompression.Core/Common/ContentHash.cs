using System.IO.Hashing;
using System.Text;

namespace ModelCompression.Common;

/// <summary>Builds cache keys: a 128-bit XxHash over labelled parts (text, file contents, other hashes).</summary>
public sealed class ContentHash
{
    private readonly XxHash128 _hash = new();

    /// <summary>Adds a labelled text part; the label keeps ("ab","c") and ("a","bc") apart.</summary>
    public ContentHash Add(string label, string value)
    {
        AppendFramed(Encoding.UTF8.GetBytes(label));
        AppendFramed(Encoding.UTF8.GetBytes(value));
        return this;
    }

    /// <summary>Adds a file's contents under a label, streamed.</summary>
    public ContentHash AddFile(string label, string path)
    {
        AppendFramed(Encoding.UTF8.GetBytes(label));
        using var stream = File.OpenRead(path);
        _hash.Append(BitConverter.GetBytes(stream.Length));
        _hash.Append(stream);
        return this;
    }

    /// <summary>The hash as 32 lowercase hex digits.</summary>
    public string Finish() => Convert.ToHexStringLower(_hash.GetCurrentHash());

    private void AppendFramed(byte[] bytes)
    {
        _hash.Append(BitConverter.GetBytes(bytes.Length));
        _hash.Append(bytes);
    }
}
