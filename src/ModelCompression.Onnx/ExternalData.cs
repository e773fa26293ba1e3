using System.Globalization;
using Google.Protobuf;
using Microsoft.Win32.SafeHandles;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx;

/// <summary>A tensor whose bytes live in a side file, with its location checked and resolved to a real path.</summary>
internal sealed record ExternalTensor(TensorProto Tensor, string Location, string RealPath, long Offset, long Length);

/// <summary>
/// Reads the external data of a model. Every location is checked before any side file is opened: it must be
/// relative, must not climb out of the model's folder with "..", and its real path (symlinks followed in the
/// file and in every folder) must stay inside the model folder's real path.
/// </summary>
internal static class ExternalData
{
    private const int ChunkSize = 1 << 20;

    /// <summary>Checks and resolves every external tensor of <paramref name="model"/>; throws with all problems found.</summary>
    public static IReadOnlyList<ExternalTensor> Resolve(ModelProto model, string modelPath)
    {
        var external = ModelWalker.Tensors(model).Where(TensorData.IsExternal).ToList();
        if (external.Count == 0)
        {
            return [];
        }

        var modelDirectory = Path.GetDirectoryName(modelPath) ?? throw new ArgumentException("The model path has no folder.", nameof(modelPath));
        var realDirectory = SafePath.RealPath(modelDirectory);
        var problems = new List<Diagnostic>();
        var parsed = new List<(TensorProto Tensor, string Location, string[] Segments, long Offset, long? Length)>();

        // 1. What the model says, read lexically: nothing touches the file system yet.
        foreach (var tensor in external)
        {
            if (Parse(tensor, modelPath, problems) is { } entry)
            {
                parsed.Add(entry);
            }
        }

        ThrowIfAny(problems);

        // 2. Real paths, with symlinks followed inside the folder only (lstat/readlink there; nothing is opened,
        //    nothing outside is looked at).
        var resolved = new List<(TensorProto Tensor, string Location, string RealPath, long Offset, long? Length)>();
        foreach (var (tensor, location, segments, offset, length) in parsed)
        {
            string? realPath;
            string? escapedTo;
            try
            {
                realPath = SafePath.ResolveInside(realDirectory, segments, out escapedTo);
            }
            catch (IOException e)
            {
                problems.Add(Error(DiagnosticCodes.ExternalDataOutsideModelFolder, modelPath,
                    $"External data '{location}' of tensor '{tensor.Name}' cannot be resolved safely: {e.Message}"));
                continue;
            }

            if (realPath is null)
            {
                problems.Add(Error(DiagnosticCodes.ExternalDataOutsideModelFolder, modelPath,
                    $"External data '{location}' of tensor '{tensor.Name}' resolves through a symbolic link to '{escapedTo}', outside the model folder '{realDirectory}'. It was not read."));
                continue;
            }

            resolved.Add((tensor, location, realPath, offset, length));
        }

        ThrowIfAny(problems);

        // 3. Present and long enough (stat only).
        var result = new List<ExternalTensor>();
        foreach (var (tensor, location, realPath, offset, length) in resolved)
        {
            var info = new FileInfo(realPath);
            if (!info.Exists)
            {
                problems.Add(Error(DiagnosticCodes.ExternalDataMissing, modelPath,
                    $"External data file '{location}' of tensor '{tensor.Name}' does not exist (looked for '{realPath}')."));
                continue;
            }

            var available = info.Length - offset;
            var needed = length ?? available;
            if (available < 0 || needed > available)
            {
                problems.Add(Error(DiagnosticCodes.ExternalDataMissing, modelPath,
                    $"External data file '{location}' is {info.Length} bytes, too short for tensor '{tensor.Name}' ({needed} bytes at offset {offset})."));
                continue;
            }

            result.Add(new ExternalTensor(tensor, location, realPath, offset, needed));
        }

        ThrowIfAny(problems);
        return result;
    }

    /// <summary>Reads each external tensor into <c>raw_data</c> and marks it inline.</summary>
    public static void LoadInto(IReadOnlyList<ExternalTensor> tensors, string modelPath)
    {
        foreach (var file in tensors.GroupBy(t => t.RealPath))
        {
            using var handle = Open(file.Key, file.First().Location, modelPath);
            foreach (var entry in file)
            {
                if (entry.Length > Array.MaxLength)
                {
                    throw CompressionException.Error(DiagnosticCodes.ModelInvalid,
                        $"Tensor '{entry.Tensor.Name}' is {entry.Length} bytes; one tensor larger than {Array.MaxLength} bytes cannot be held in memory.",
                        modelPath);
                }

                var buffer = GC.AllocateUninitializedArray<byte>((int)entry.Length);
                var read = 0;
                while (read < buffer.Length)
                {
                    var n = RandomAccess.Read(handle, buffer.AsSpan(read), entry.Offset + read);
                    if (n == 0)
                    {
                        throw CompressionException.Error(DiagnosticCodes.ExternalDataMissing,
                            $"External data file '{entry.Location}' ended early while reading tensor '{entry.Tensor.Name}'.", modelPath);
                    }

                    read += n;
                }

                entry.Tensor.RawData = UnsafeByteOperations.UnsafeWrap(buffer);
                entry.Tensor.ExternalData.Clear();
                entry.Tensor.DataLocation = TensorProto.Types.DataLocation.Default;
            }
        }
    }

    /// <summary>Streams one external tensor's bytes in chunks (for hashing models too big to hold).</summary>
    public static void ReadChunks(ExternalTensor entry, string modelPath, Action<ReadOnlySpan<byte>> sink)
    {
        using var handle = Open(entry.RealPath, entry.Location, modelPath);
        var buffer = new byte[(int)Math.Min(ChunkSize, Math.Max(entry.Length, 1))];
        long done = 0;
        while (done < entry.Length)
        {
            var want = (int)Math.Min(buffer.Length, entry.Length - done);
            var n = RandomAccess.Read(handle, buffer.AsSpan(0, want), entry.Offset + done);
            if (n == 0)
            {
                throw CompressionException.Error(DiagnosticCodes.ExternalDataMissing,
                    $"External data file '{entry.Location}' ended early while reading tensor '{entry.Tensor.Name}'.", modelPath);
            }

            sink(buffer.AsSpan(0, n));
            done += n;
        }
    }

    private static SafeFileHandle Open(string realPath, string location, string modelPath)
    {
        try
        {
            return File.OpenHandle(realPath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CompressionException(
                Error(DiagnosticCodes.ExternalDataMissing, modelPath, $"External data file '{location}' cannot be read: {e.Message}"), e);
        }
    }

    private static (TensorProto, string, string[], long, long?)? Parse(TensorProto tensor, string modelPath, List<Diagnostic> problems)
    {
        string? location = null;
        long offset = 0;
        long? length = null;
        var valid = true;
        foreach (var entry in tensor.ExternalData)
        {
            switch (entry.Key)
            {
                case "location":
                    location = entry.Value;
                    break;
                case "offset":
                    valid &= TryParseSize(entry.Value, "offset", out offset);
                    break;
                case "length":
                    valid &= TryParseSize(entry.Value, "length", out var parsedLength);
                    length = parsedLength;
                    break;
            }
        }

        if (!valid)
        {
            return null;
        }

        if (string.IsNullOrEmpty(location) || location.Contains('\0', StringComparison.Ordinal))
        {
            problems.Add(Error(DiagnosticCodes.ModelInvalid, modelPath,
                $"Tensor '{tensor.Name}' is marked external but has no valid 'location'."));
            return null;
        }

        if (Path.IsPathRooted(location) || location[0] is '/' or '\\' || (location.Length >= 2 && location[1] == ':'))
        {
            problems.Add(Error(DiagnosticCodes.ExternalDataOutsideModelFolder, modelPath,
                $"External data location '{location}' of tensor '{tensor.Name}' is an absolute path; it must be relative to the model's folder. It was not read."));
            return null;
        }

        // Both separators: models written on Windows use '\'.
        var segments = location.Split('/', '\\');
        var depth = 0;
        foreach (var segment in segments)
        {
            depth += segment switch { "" or "." => 0, ".." => -1, _ => 1 };
            if (depth < 0)
            {
                problems.Add(Error(DiagnosticCodes.ExternalDataOutsideModelFolder, modelPath,
                    $"External data location '{location}' of tensor '{tensor.Name}' leaves the model's folder through '..'. It was not read."));
                return null;
            }
        }

        if (depth == 0)
        {
            problems.Add(Error(DiagnosticCodes.ModelInvalid, modelPath,
                $"External data location '{location}' of tensor '{tensor.Name}' names the model's folder, not a file."));
            return null;
        }

        var expected = TensorData.ExpectedByteCount(tensor);
        if (length is long given && expected is long need && given != need)
        {
            problems.Add(Error(DiagnosticCodes.ModelInvalid, modelPath,
                $"Tensor '{tensor.Name}' declares {given} bytes of external data, but its dims and type need {need}."));
            return null;
        }

        return (tensor, location, segments, offset, length ?? expected);

        bool TryParseSize(string text, string key, out long value)
        {
            if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value))
            {
                return true;
            }

            problems.Add(Error(DiagnosticCodes.ModelInvalid, modelPath,
                $"Tensor '{tensor.Name}' has external data {key} '{text}', which is not a non-negative integer."));
            return false;
        }
    }

    private static Diagnostic Error(string code, string file, string message) => Diagnostic.Error(code, message, file);

    private static void ThrowIfAny(List<Diagnostic> problems)
    {
        if (problems.Count > 0)
        {
            throw new CompressionException(problems.ToArray());
        }
    }
}
