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
    private readonly LoadedData _data;
    private readonly Dictionary<string, Extreme?> _extremes = new(StringComparer.Ordinal);

    /// <summary>Checks against <paramref name="data"/>; each ids tensor is scanned once, however many models read it.</summary>
    public TokenRange(LoadedData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        _data = data;
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
        foreach (var (input, table, rows) in EmbeddingTables(model))
        {
            var tensorName = _data.Train.Tensors.Count == 1 && model.Graph.Input.Count == 1 ? _data.Train.Tensors[0].Name : input;
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
        foreach (var (splitName, split) in _data.Splits())
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
