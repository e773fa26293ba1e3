using System.Numerics;
using System.Runtime.CompilerServices;
using Google.Protobuf;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Onnx;

/// <summary>
/// Reads and writes ONNX model files. Loading turns every failure into a diagnostic (MC2001 unreadable,
/// MC2003/MC2004 external data, MC2005 versions); saving is atomic and deterministic and moves large
/// tensors to a side file when asked or when the model would not fit protobuf's 2 GB limit.
/// </summary>
public static class OnnxModelFile
{
    private static readonly ConditionalWeakTable<ModelProto, ExternalDataInfo> LoadedExternal = new();

    /// <summary>
    /// Reads the model at <paramref name="path"/>. External data is checked (it must stay inside the model's
    /// folder) and, by default, read into the tensors so the returned model is self-contained.
    /// </summary>
    /// <exception cref="CompressionException">
    /// MC2001 the file is not a readable model; MC2003 external data outside the model folder (nothing was read);
    /// MC2004 external data missing or short; MC2005 unsupported IR version or opset; MC2002 malformed external data fields.
    /// </exception>
    public static ModelProto Load(string path, OnnxLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new OnnxLoadOptions();
        var fullPath = Path.GetFullPath(path);
        var (model, external) = LoadCore(fullPath, options.CheckVersions);
        if (options.LoadExternalData && external.Count > 0)
        {
            ExternalData.LoadInto(external, fullPath);
            LoadedExternal.AddOrUpdate(model, new ExternalDataInfo(
                external.Select(e => e.Location).Distinct(StringComparer.Ordinal).ToArray(),
                external.Select(e => e.Tensor.Name).ToArray()));
        }

        return model;
    }

    /// <summary>
    /// <see cref="Load"/> followed by <see cref="OnnxChecker"/>: the one way a model file the engine is given (a
    /// teacher, a student, a model a hint reads from) is read, so that a broken file is reported in the project's
    /// own words before ONNX Runtime or a stage sees it.
    /// </summary>
    /// <exception cref="CompressionException">As <see cref="Load"/>, and MC2002 with every problem the checker finds.</exception>
    public static ModelProto LoadChecked(string path, OnnxLoadOptions? options = null)
    {
        var model = Load(path, options);
        OnnxChecker.ThrowIfInvalid(model, Path.GetFullPath(path));
        return model;
    }

    /// <summary>
    /// Checks each file as <see cref="LoadChecked"/> does, without reading external data (its locations are
    /// checked and its files' sizes looked at), and reports every problem of every file at once.
    /// </summary>
    /// <exception cref="CompressionException">Every problem found, each naming its file.</exception>
    public static void Verify(IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var problems = new List<Diagnostic>();
        foreach (var path in paths)
        {
            try
            {
                LoadChecked(path, new OnnxLoadOptions { LoadExternalData = false });
            }
            catch (CompressionException e)
            {
                problems.AddRange(e.Diagnostics);
            }
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }
    }

    /// <summary>
    /// What was external in the file <paramref name="model"/> was loaded from, or null when it was loaded
    /// without external data (or not by <see cref="Load"/>). Clones do not carry this.
    /// </summary>
    public static ExternalDataInfo? GetExternalDataInfo(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return LoadedExternal.TryGetValue(model, out var info) ? info : null;
    }

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="path"/> atomically: the model (and its side file, when
    /// data is external) is written to temporary files in the same folder and renamed into place, so a failure
    /// leaves the previous files as they were. The caller's model is not changed. The same model always gives
    /// the same bytes.
    /// </summary>
    /// <exception cref="CompressionException">MC2002: the model cannot be written within protobuf's 2 GB limit.</exception>
    /// <exception cref="ArgumentException">Bad options, or the model holds external tensors whose data was not loaded.</exception>
    /// <exception cref="IOException">The files cannot be written.</exception>
    public static void Save(ModelProto model, string path, OnnxSaveOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new OnnxSaveOptions();
        var fullPath = Path.GetFullPath(path);
        var fileName = Path.GetFileName(fullPath);
        var directory = Path.GetDirectoryName(fullPath)!;
        var dataName = options.ExternalDataFileName ?? fileName + ".data";
        ValidateOptions(options, fileName, dataName);

        var copy = model.Clone();
        if (ModelWalker.Tensors(copy).FirstOrDefault(TensorData.IsExternal) is { } unloaded)
        {
            throw new ArgumentException(
                $"Tensor '{unloaded.Name}' is external and its data was not loaded; load the model with LoadExternalData on before saving it.",
                nameof(model));
        }

        var moved = PlanExternal(copy, model, options, fullPath);
        Directory.CreateDirectory(directory);
        string? dataTemp = null;
        string? modelTemp = null;
        try
        {
            if (moved.Count > 0)
            {
                dataTemp = TempPath(directory, dataName);
                WriteExternal(moved, dataTemp, dataName, options.Alignment);
            }

            modelTemp = TempPath(directory, fileName);
            using (var stream = new FileStream(modelTemp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                copy.WriteTo(stream);
                stream.Flush(flushToDisk: true);
            }

            Commit(ref dataTemp, ref modelTemp, Path.Join(directory, dataName), fullPath);
        }
        finally
        {
            TryDelete(dataTemp);
            TryDelete(modelTemp);
        }
    }

    /// <summary>Parses, checks versions and resolves (without reading) external data.</summary>
    internal static (ModelProto Model, IReadOnlyList<ExternalTensor> External) LoadCore(string fullPath, bool checkVersions)
    {
        var model = Parse(fullPath);
        if (checkVersions)
        {
            CheckVersions(model, fullPath);
        }

        return (model, ExternalData.Resolve(model, fullPath));
    }

    private static ModelProto Parse(string path)
    {
        ModelProto model;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                throw Unreadable(path, "the file does not exist");
            }

            if (info.Length > OnnxSaveOptions.ProtobufSizeLimit)
            {
                throw Unreadable(path, $"the file is {info.Length} bytes, over protobuf's 2 GB limit (large models keep their weights in external data)");
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            model = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw Unreadable(path, $"it is not a valid ONNX protobuf, or it is truncated ({e.Message})", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Unreadable(path, e.Message, e);
        }
        catch (Exception e) when (e is not CompressionException and not OutOfMemoryException)
        {
            // The parser should only throw InvalidProtocolBufferException; anything else from corrupt input is the same problem.
            throw Unreadable(path, $"it cannot be parsed ({e.GetType().Name}: {e.Message})", e);
        }

        // Any byte string parses as *some* protobuf (unknown fields are skipped), so a file that is not a model
        // usually parses into an empty-looking ModelProto. A model always has an IR version and a graph.
        if (model.IrVersion <= 0 || model.Graph is null)
        {
            throw Unreadable(path, "it is not an ONNX model (no IR version or no graph)");
        }

        return model;
    }

    private static CompressionException Unreadable(string path, string reason, Exception? inner = null) =>
        new(Diagnostic.Error(DiagnosticCodes.ModelUnreadable, $"Cannot read ONNX model '{path}': {reason}.", path), inner);

    private static void CheckVersions(ModelProto model, string path)
    {
        var problems = new List<Diagnostic>();
        if (model.IrVersion is < OnnxVersions.MinIrVersion or > OnnxVersions.MaxIrVersion)
        {
            problems.Add(Diagnostic.Error(DiagnosticCodes.ModelUnsupportedVersion,
                $"IR version {model.IrVersion} is not supported (supported: {OnnxVersions.MinIrVersion} to {OnnxVersions.MaxIrVersion}).", path));
        }

        foreach (var opset in model.OpsetImport.Where(o => OnnxVersions.IsDefaultDomain(o.Domain)))
        {
            if (opset.Version is < OnnxVersions.MinOpset or > OnnxVersions.MaxOpset)
            {
                problems.Add(Diagnostic.Error(DiagnosticCodes.ModelUnsupportedVersion,
                    $"Opset {opset.Version} of the default ONNX domain is not supported (supported: {OnnxVersions.MinOpset} to {OnnxVersions.MaxOpset}).", path));
            }
        }

        if (problems.Count > 0)
        {
            throw new CompressionException(problems);
        }
    }

    private static void ValidateOptions(OnnxSaveOptions options, string fileName, string dataName)
    {
        if (options.Alignment <= 0 || !BitOperations.IsPow2(options.Alignment))
        {
            throw new ArgumentException($"Alignment must be a positive power of two, not {options.Alignment}.", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(options.ExternalDataThreshold, nameof(options));
        if (dataName.Length == 0 || dataName is "." or ".." || dataName.IndexOfAny(['/', '\\', '\0']) >= 0
            || dataName.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0)
        {
            throw new ArgumentException($"External data file name '{dataName}' must be a plain file name in the model's folder.", nameof(options));
        }

        if (string.Equals(dataName, fileName, StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException("The external data file cannot have the model file's name.", nameof(options));
        }
    }

    /// <summary>Chooses the initializers that go to the side file (empty: everything inline).</summary>
    private static List<(TensorProto Tensor, ReadOnlyMemory<byte> Bytes)> PlanExternal(
        ModelProto copy, ModelProto original, OnnxSaveOptions options, string path)
    {
        var size = EstimateSize(copy);
        var tooBig = size > options.InlineSizeLimit;
        var external = options.ExternalData switch
        {
            ExternalDataMode.Always => true,
            ExternalDataMode.Never => false,
            _ => tooBig || GetExternalDataInfo(original) is not null,
        };

        if (!external)
        {
            return tooBig ? throw TooBig(path, size, options) : [];
        }

        var moved = Select(options.ExternalDataThreshold);
        if (size - moved.Sum(m => (long)m.Bytes.Length) > options.InlineSizeLimit)
        {
            // Over the limit even so: move every initializer that can be moved.
            moved = Select(0);
            var inline = size - moved.Sum(m => (long)m.Bytes.Length);
            if (inline > options.InlineSizeLimit)
            {
                throw TooBig(path, inline, options);
            }
        }

        return moved;

        List<(TensorProto Tensor, ReadOnlyMemory<byte> Bytes)> Select(long threshold)
        {
            var result = new List<(TensorProto Tensor, ReadOnlyMemory<byte> Bytes)>();
            foreach (var tensor in ModelWalker.Initializers(copy))
            {
                if (TensorData.TryGetBytes(tensor, out var bytes) && bytes.Length > 0 && bytes.Length >= threshold)
                {
                    result.Add((tensor, bytes));
                }
            }

            return result;
        }
    }

    private static CompressionException TooBig(string path, long size, OnnxSaveOptions options) =>
        CompressionException.Error(DiagnosticCodes.ModelInvalid,
            $"The model is about {size} bytes inline, over the {options.InlineSizeLimit}-byte protobuf limit; save it with external data.",
            path);

    /// <summary>Serialized size without building the bytes (and without int overflow for models over 2 GB).</summary>
    internal static long EstimateSize(ModelProto model)
    {
        var stripped = model.Clone();
        long data = 0;
        foreach (var tensor in ModelWalker.Tensors(stripped))
        {
            // Payload plus a generous allowance for the field's tag and length prefix.
            data += tensor.RawData.Length + 16;
            tensor.RawData = ByteString.Empty;
        }

        return data + stripped.CalculateSize();
    }

    private static void WriteExternal(
        List<(TensorProto Tensor, ReadOnlyMemory<byte> Bytes)> moved, string tempPath, string dataName, int alignment)
    {
        using var stream = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        var padding = new byte[alignment];
        long offset = 0;
        foreach (var (tensor, bytes) in moved)
        {
            var aligned = (offset + alignment - 1) & ~((long)alignment - 1);
            stream.Write(padding, 0, (int)(aligned - offset));
            offset = aligned;
            stream.Write(bytes.Span);

            TensorData.ClearData(tensor);
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = bytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) });
            tensor.DataLocation = TensorProto.Types.DataLocation.External;
            offset += bytes.Length;
        }

        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Renames the side file, then the model, into place. Should the model's rename fail, the previous side file
    /// is put back so the previous model still reads.
    /// </summary>
    private static void Commit(ref string? dataTemp, ref string? modelTemp, string dataPath, string modelPath)
    {
        string? backup = null;
        var dataPlaced = false;
        try
        {
            if (dataTemp is not null)
            {
                if (File.Exists(dataPath))
                {
                    backup = TempPath(Path.GetDirectoryName(dataPath)!, Path.GetFileName(dataPath));
                    File.Move(dataPath, backup);
                }

                File.Move(dataTemp, dataPath);
                dataTemp = null;
                dataPlaced = true;
            }

            File.Move(modelTemp!, modelPath, overwrite: true);
            modelTemp = null;
        }
        catch
        {
            if (backup is not null)
            {
                File.Move(backup, dataPath, overwrite: true);
                backup = null;
            }
            else if (dataPlaced)
            {
                TryDelete(dataPath);
            }

            throw;
        }
        finally
        {
            TryDelete(backup);
        }
    }

    private static string TempPath(string directory, string fileName) =>
        Path.Join(directory, $".{fileName}.{Guid.NewGuid():N}.tmp");

    private static void TryDelete(string? path)
    {
        if (path is null)
        {
            return;
        }

        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the temp file has a unique hidden name and never replaces anything.
        }
    }
}
