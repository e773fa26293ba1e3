using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Text;

namespace ModelCompression.Serving;

/// <summary>A model the server answers for: its id, the opened <see cref="GenerativeModel"/> and its batch scheduler.</summary>
internal sealed class ServedModel : IDisposable
{
    private ServedModel(string id, GenerativeModel model, long created, ServeOptions options, ServerCounters counters)
    {
        Id = id;
        Model = model;
        Created = created;
        Scheduler = new BatchScheduler(model, options, counters);
    }

    /// <summary>The id requests name.</summary>
    public string Id { get; }

    /// <summary>The model.</summary>
    public GenerativeModel Model { get; }

    /// <summary>Unix seconds of the model file's last write (the <c>created</c> of <c>/v1/models</c>).</summary>
    public long Created { get; }

    /// <summary>Where its generation requests wait and run.</summary>
    public BatchScheduler Scheduler { get; }

    /// <summary>
    /// Opens <paramref name="source"/>: a folder with <see cref="GenerativeModel.Open"/>, a decoder file with
    /// <see cref="GenerativeModel.OpenDecoder"/> and its tokenizer. A path that is neither, or a decoder without a
    /// tokenizer, is MC2068; the model's own problems keep their codes.
    /// </summary>
    public static ServedModel Load(ServedModelSource source, ServeOptions options, ServerCounters counters)
    {
        var path = Path.GetFullPath(source.Path);
        GenerativeModel model;
        string defaultId;
        string timestampFile;
        if (Directory.Exists(path))
        {
            model = GenerativeModel.Open(path, options.Threads);
            defaultId = Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
            timestampFile = Path.Join(path, GenerativeModelFolder.ModelFile);
        }
        else if (File.Exists(path) && path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
        {
            model = GenerativeModel.OpenDecoder(path, Tokenizer(source, path), options.Threads);
            defaultId = Path.GetFileNameWithoutExtension(path);
            timestampFile = path;
        }
        else
        {
            throw CompressionException.Error(DiagnosticCodes.ServeModelUnusable, $"Cannot serve '{path}': it is neither a generative model folder nor a decoder .onnx file.", path);
        }

        var created = new DateTimeOffset(File.GetLastWriteTimeUtc(timestampFile)).ToUnixTimeSeconds();
        return new ServedModel(source.Name ?? defaultId, model, created, options, counters);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Scheduler.Dispose();
        Model.Dispose();
    }

    private static GenerationTokenizer Tokenizer(ServedModelSource source, string modelPath)
    {
        if (source.Tokenizer == "byte")
        {
            return GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte));
        }

        var file = source.Tokenizer is { } given ? Path.GetFullPath(given) : Path.Join(Path.GetDirectoryName(modelPath), GenerationTokenizer.DefaultFileName);
        return File.Exists(file)
            ? GenerationTokenizer.Load(file)
            : throw CompressionException.Error(
                DiagnosticCodes.ServeModelUnusable,
                $"Cannot serve the decoder '{modelPath}': it needs a tokenizer, and {(source.Tokenizer is null ? $"there is no {GenerationTokenizer.DefaultFileName} beside it" : $"'{file}' does not exist")}. Give --tokenizer byte or the path of a {GenerationTokenizer.DefaultFileName}.",
                modelPath);
    }
}
