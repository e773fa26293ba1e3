using System.Buffers.Binary;
using System.IO.Hashing;
using Google.Protobuf;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx;

/// <summary>
/// A content hash of a model: its graph and every tensor's bytes, whether the bytes are inline, in typed
/// fields or in an external file. Saving and loading a model without changing it keeps the hash; changing
/// one weight changes it. Tensors are hashed one at a time, so models over 2 GB work.
/// </summary>
public static class ModelHash
{
    // Bump when the hashed form changes, so old cache keys stop matching.
    private static readonly byte[] Header = "ModelCompression.ModelHash/v1\n"u8.ToArray();

    /// <summary>The hash of a model in memory, as 32 lowercase hex digits (XxHash128).</summary>
    /// <exception cref="ArgumentException">The model holds external tensors whose data was not loaded.</exception>
    public static string Compute(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Hash(model.Clone(), tensor => throw new ArgumentException(
            $"Tensor '{tensor.Name}' is external and its data was not loaded; use ComputeFile or load the data.", nameof(model)));
    }

    /// <summary>
    /// The hash of a model file, reading external data straight from its side files (it is never all in memory).
    /// Equals <see cref="Compute"/> of the loaded model.
    /// </summary>
    /// <exception cref="Diagnostics.CompressionException">The file cannot be loaded (see <see cref="OnnxModelFile.Load"/>).</exception>
    public static string ComputeFile(string path) => ComputeFile(path, out _);

    /// <summary>
    /// The hash of a model file as <see cref="ComputeFile(string)"/>, and every file it was read from: the model file
    /// first, then each external data file (full paths), so a caller can tell when the hash may have changed.
    /// </summary>
    /// <exception cref="Diagnostics.CompressionException">The file cannot be loaded (see <see cref="OnnxModelFile.Load"/>).</exception>
    public static string ComputeFile(string path, out IReadOnlyList<string> files)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var fullPath = Path.GetFullPath(path);
        var (model, external) = OnnxModelFile.LoadCore(fullPath, checkVersions: false);
        var byTensor = new Dictionary<TensorProto, ExternalTensor>(ReferenceEqualityComparer.Instance);
        foreach (var entry in external)
        {
            byTensor[entry.Tensor] = entry;
        }

        // The path as written and the real path: a symbolic link pointed elsewhere changes the first one's stamp.
        var folder = Path.GetDirectoryName(fullPath)!;
        files = [fullPath, .. external.SelectMany(e => new[] { Path.GetFullPath(Path.Combine(folder, e.Location)), e.RealPath }).Distinct(StringComparer.Ordinal)];
        // The model is ours, so it is stripped in place and its tensors are the ones the external entries name.
        return Hash(model, tensor => byTensor[tensor], fullPath);
    }

    /// <summary>Hashes and strips <paramref name="stripped"/>, which the caller owns.</summary>
    private static string Hash(ModelProto stripped, Func<TensorProto, object> external, string modelPath = "")
    {
        // Each tensor's data is taken out and hashed on its own; what stays is the graph with names, dims and
        // types, and no trace of where the bytes were stored.
        var payloads = new List<object>();
        foreach (var tensor in ModelWalker.Tensors(stripped))
        {
            if (TensorData.IsExternal(tensor))
            {
                payloads.Add(external(tensor));
            }
            else if (TensorData.TryGetBytes(tensor, out var bytes))
            {
                payloads.Add(bytes);
            }
            else
            {
                continue; // string tensors: their data stays in the graph
            }

            TensorData.ClearData(tensor);
        }

        var hash = new XxHash128();
        hash.Append(Header);
        var graph = stripped.ToByteArray();
        AppendLength(hash, graph.Length);
        hash.Append(graph);
        foreach (var payload in payloads)
        {
            switch (payload)
            {
                case ReadOnlyMemory<byte> bytes:
                    AppendLength(hash, bytes.Length);
                    hash.Append(bytes.Span);
                    break;
                case ExternalTensor entry:
                    AppendLength(hash, entry.Length);
                    ExternalData.ReadChunks(entry, modelPath, chunk => hash.Append(chunk));
                    break;
            }
        }

        return Convert.ToHexStringLower(hash.GetCurrentHash());
    }

    private static void AppendLength(XxHash128 hash, long length)
    {
        Span<byte> buffer = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(buffer, length);
        hash.Append(buffer);
    }
}
