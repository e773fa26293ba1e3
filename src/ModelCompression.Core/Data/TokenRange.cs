using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Data;

/// <summary>
/// The token-id check before any work: every id the data feeds to a model's embedding table (a Gather from an
/// initializer whose indices are a graph input) must be a row of that table. An id past the table fails in
/// libtorch (training) or ONNX Runtime (evaluation) deep inside a batch; here it is MC2020 naming the data file
/// and line of the largest id, the table's rows and the option that fixes it.
/// </summary>
public sealed class TokenRange
{
    private readonly Lazy<LoadedData> _data;
    private readonly IReadOnlyDictionary<string, IdRange>? _known;
    private readonly IReadOnlyList<string> _trainTensors = [];
    private readonly Dictionary<string, Extreme?> _extremes = new(StringComparer.Ordinal);

    /// <summary>Checks against <paramref name="data"/>; each ids tensor is scanned once, however many models read it.</summary>
    public TokenRange(LoadedData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        _data = new Lazy<LoadedData>(data);
    }

    /// <summary>
    /// Checks against the id ranges <paramref name="known"/> (<see cref="IdRanges"/> of the same data, remembered), so
    /// ids that fit need no data; only a failing check reads <paramref name="data"/>, to say where the bad id is.
    /// <paramref name="trainTensors"/> names the training split's tensors.
    /// </summary>
    internal TokenRange(Func<LoadedData> data, IReadOnlyDictionary<string, IdRange> known, IReadOnlyList<string> trainTensors)
    {
        _data = new Lazy<LoadedData>(data, LazyThreadSafetyMode.None);
        _known = known;
        _trainTensors = trainTensors;
    }

    /// <summary>The smallest and largest value of each int64 tensor of <paramref name="data"/> over every split, by tensor name.</summary>
    internal static IReadOnlyDictionary<string, IdRange> IdRanges(LoadedData data)
    {
        var range = new TokenRange(data);
        var names = data.Splits().SelectMany(s => s.Data.Tensors).Where(t => t.ElementType == DataElementType.Int64).Select(t => t.Name).Distinct(StringComparer.Ordinal);
        var ranges = new Dictionary<string, IdRange>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (range.Scan(name) is { } extreme)
            {
                ranges[name] = new IdRange(extreme.Min, extreme.Max);
            }
        }

        return ranges;
    }

    /// <summary>
    /// The embedding tables of <paramref name="model"/>: (graph input, initializer, rows) for every Gather along
    /// axis 0 of an initializer by an int64 graph input.
    /// </summary>
    public static IReadOnlyList<(string Input, string Table, long Rows)> EmbeddingTables(ModelProto model)
    {
        ArgumentNullException.ThrowIfNull(model);
        const int Int64 = 7;
        var ids = model.Graph.Input
            .Where(i => i.Type?.TensorType?.ElemType == Int64)
            .Select(i => i.Name)
            .ToHashSet(StringComparer.Ordinal);
        var tables = model.Graph.Initializer
            .Where(t => t.Dims.Count >= 1)
            .GroupBy(t => t.Name, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First().Dims[0], StringComparer.Ordinal);
        return
        [
            .. model.Graph.Node
                .Where(n => n.OpType == "Gather" && n.Domain is "" or "ai.onnx" && n.Input.Count == 2
                    && ids.Contains(n.Input[1]) && tables.ContainsKey(n.Input[0])
                    && (n.Attribute.FirstOrDefault(a => a.Name == "axis")?.I ?? 0) == 0)
                .Select(n => (n.Input[1], n.Input[0], tables[n.Input[0]]))
                .Distinct(),
        ];
    }

    /// <summary>
    /// Throws MC2020 when an id of any split falls outside an embedding table of <paramref name="model"/>;
    /// <paramref name="role"/> and <paramref name="modelPath"/> name the model, <paramref name="fix"/> says what
    /// makes the ids fit (it differs between a built-in student and a model whose table is fixed).
    /// </summary>
    public void Check(ModelProto model, string role, string modelPath, string fix)
    {
        ArgumentNullException.ThrowIfNull(model);
        Check(EmbeddingTables(model), model.Graph.Input.Count, role, modelPath, fix);
    }

    /// <summary>
    /// <see cref="Check(ModelProto, string, string, string)"/> of a model whose <see cref="EmbeddingTables"/> are
    /// <paramref name="tables"/> and which has <paramref name="modelInputs"/> graph inputs.
    /// </summary>
    internal void Check(IReadOnlyList<(string Input, string Table, long Rows)> tables, int modelInputs, string role, string modelPath, string fix)
    {
        foreach (var (input, table, rows) in tables)
        {
            if (_known is not null)
            {
                var name = _trainTensors.Count == 1 && modelInputs == 1 ? _trainTensors[0] : input;
                if (!_known.TryGetValue(name, out var range) || (range.Min >= 0 && range.Max < rows))
                {
                    continue;
                }
            }

            var tensorName = _data.Value.Train.Tensors.Count == 1 && modelInputs == 1 ? _data.Value.Train.Tensors[0].Name : input;
            if (Scan(tensorName) is not { } extreme || (extreme.Min >= 0 && extreme.Max < rows))
            {
                continue;
            }

            var (bad, at) = extreme.Max >= rows ? (extreme.Max, extreme.MaxAt) : (extreme.Min, extreme.MinAt);
            var (file, line, fileRow) = at.Split.InputLocation(at.Row);
            // The diagnostic names the file and line; a format without lines gets the row in the message.
            var where = line is null ? $"row {fileRow.ToString(CultureInfo.InvariantCulture)}, " : "";
            throw CompressionException.Error(
                DiagnosticCodes.DataSchemaMismatch,
                string.Create(
                    CultureInfo.InvariantCulture,
                    $"The {role} '{modelPath}' cannot look up token id {bad} ({where}the {at.SplitName} split's {(bad == extreme.Max ? "largest" : "smallest")} id in '{tensorName}'): its embedding '{table}' has {rows} rows (ids 0 to {rows - 1}). {fix.Replace("{needed}", (extreme.Max + 1).ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal)}"),
                file,
                line);
        }
    }

    /// <summary>The smallest and largest id of <paramref name="tensorName"/> over every split, and where they are; null when no split has it as int64.</summary>
    private Extreme? Scan(string tensorName)
    {
        if (_extremes.TryGetValue(tensorName, out var known))
        {
            return known;
        }

        const int ChunkRows = 4096;
        Extreme? extreme = null;
        foreach (var (splitName, split) in _data.Value.Splits())
        {
            if (split.Tensor(tensorName) is not { ElementType: DataElementType.Int64 } tensor)
            {
                continue;
            }

            var buffer = new long[Math.Min(ChunkRows, Math.Max(1, tensor.Count)) * tensor.SampleSize];
            for (var start = 0; start < tensor.Count; start += ChunkRows)
            {
                var count = Math.Min(ChunkRows, tensor.Count - start);
                var values = buffer.AsSpan(0, count * tensor.SampleSize);
                tensor.CopyRange(start, count, values);
                for (var i = 0; i < values.Length; i++)
                {
                    var value = values[i];
                    if (extreme is null || value > extreme.Max || value < extreme.Min)
                    {
                        var at = new IdAt(splitName, split, start + (i / tensor.SampleSize));
                        extreme = extreme is null ? new Extreme(value, at, value, at)
                            : value > extreme.Max ? extreme with { Max = value, MaxAt = at }
                            : extreme with { Min = value, MinAt = at };
                    }
                }
            }
        }

        _extremes[tensorName] = extreme;
        return extreme;
    }

    private sealed record IdAt(string SplitName, Dataset Split, int Row);

    private sealed record Extreme(long Min, IdAt MinAt, long Max, IdAt MaxAt);
}

/// <summary>The smallest and largest id of a tensor.</summary>
/// <param name="Min">The smallest.</param>
/// <param name="Max">The largest.</param>
internal readonly record struct IdRange(long Min, long Max);
