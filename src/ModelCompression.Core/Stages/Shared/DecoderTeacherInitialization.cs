using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Stages;

/// <summary>
/// Starts a decoder student from a decoder teacher's weights (both in <see cref="DecoderConvention"/>, initializers named
/// as the built-in decoder names them): the student's layer i takes all of the teacher's layer map[i]
/// (<c>decoder.layer{map[i]}.*</c>), and everything outside the layers (the token embedding, which a tied head shares,
/// the learned position table, the final norm, an untied head) comes over by name. The student must be the teacher's
/// architecture with fewer (or reordered) layers: every student weight takes a teacher weight of the same shape, and
/// every teacher weight outside the layers and in the mapped layers lands in the student, so the result computes what
/// a decoder made of the mapped teacher layers computes. The one conversion is a head: an untied student head
/// (<c>lm_head.weight</c> [width, vocab]) from a tied teacher takes the teacher's embedding transposed. Unlike
/// <see cref="TeacherInitialization.Apply"/> for classifiers, which copies what matches and leaves the rest, every
/// misfit is an error, all reported at once: a bad layer map (MC2076) or weights that do not fit (MC2077).
/// </summary>
public static class DecoderTeacherInitialization
{
    // The built-in decoder's names outside the layers (DecoderBuilder).
    private const string Embedding = "embedding.weight";
    private const string Head = "lm_head.weight";

    /// <summary>
    /// A copy of <paramref name="student"/> with the teacher's weights, and the student initializer names filled.
    /// <paramref name="layerMap"/> names a teacher layer for each student layer (null or empty: layer i from layer i).
    /// <paramref name="studentPath"/> and <paramref name="teacherPath"/> name the models in messages.
    /// </summary>
    public static (ModelProto Student, IReadOnlyList<string> Copied) Apply(
        ModelProto student, ModelProto teacher, IReadOnlyList<int>? layerMap, string? studentPath = null, string? teacherPath = null)
    {
        ArgumentNullException.ThrowIfNull(student);
        ArgumentNullException.ThrowIfNull(teacher);
        var (studentName, teacherName) = (studentPath ?? "the student", teacherPath ?? "the teacher");
        var map = MapLayers(student, teacher, layerMap, studentName, teacherName, studentPath);

        var teacherWeights = teacher.Graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var result = student.Clone();
        var copied = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        var problems = new List<string>();
        for (var i = 0; i < result.Graph.Initializer.Count; i++)
        {
            var target = result.Graph.Initializer[i];
            var sourceName = TeacherInitialization.TeacherName(target.Name, map)!;
            TensorProto? copy = null;
            if (teacherWeights.TryGetValue(sourceName, out var source))
            {
                used.Add(sourceName);
                copy = source.DataType == target.DataType && source.Dims.SequenceEqual(target.Dims)
                    ? source.Clone()
                    : Misfit(problems, target, source, sourceName);
            }
            else if (target.Name == Head && teacherWeights.TryGetValue(Embedding, out var embedding) && embedding.Dims.Count == 2)
            {
                // A tied teacher's head is its embedding transposed: logits = x · embedding.weightᵀ.
                copy = embedding.Dims.Reverse().SequenceEqual(target.Dims) && embedding.DataType == target.DataType
                    ? Transposed(embedding)
                    : Misfit(problems, target, embedding, $"{Embedding} transposed");
            }
            else
            {
                problems.Add(target.Name == "position_embedding.weight"
                    ? $"the student has a learned position table '{target.Name}' and the teacher has none (its positions are rotary): build the student with the teacher's positions"
                    : $"student weight '{target.Name}' has no teacher weight '{sourceName}' to come from");
            }

            if (copy is not null)
            {
                copy.Name = target.Name;
                result.Graph.Initializer[i] = copy;
                copied.Add(target.Name);
            }
        }

        var mapped = map.ToHashSet();
        foreach (var name in teacherWeights.Keys.Where(n => !used.Contains(n) && (TeacherInitialization.LayerOf(n) is not { } layer || mapped.Contains(layer))))
        {
            problems.Add(name switch
            {
                Head => $"the teacher's untied output head '{Head}' has no place in the student, whose head is tied to its embedding: build the student with tie_embeddings: false",
                "position_embedding.weight" => $"the teacher's learned position table '{name}' has no place in the student (its positions are rotary): build the student with the teacher's positions",
                _ => $"teacher weight '{name}' has no student weight of the same name to go to",
            });
        }

        problems.AddRange(HeadSplits(student, teacher, map));
        if (problems.Count > 0)
        {
            throw new CompressionException([.. problems.Select(p => Diagnostic.Error(
                DiagnosticCodes.DecoderInitMismatch,
                $"Cannot start decoder '{studentName}' from teacher '{teacherName}': {p}.",
                studentPath))]);
        }

        return (result, copied);
    }

    /// <summary>The teacher layer of each student layer; MC2076 when the models are not decoders or the map does not fit.</summary>
    private static int[] MapLayers(ModelProto student, ModelProto teacher, IReadOnlyList<int>? layerMap, string studentName, string teacherName, string? studentPath)
    {
        var problems = new List<string>();
        foreach (var (model, name) in new[] { (student, studentName), (teacher, teacherName) })
        {
            if (!DecoderConvention.IsDecoder(model))
            {
                problems.Add($"'{name}' is not a decoder of the convention (an input '{DecoderConvention.InputIds}' and a rank-3 output '{DecoderConvention.Logits}')");
            }
        }

        var studentLayers = Layers(student);
        var teacherLayers = Layers(teacher);
        int[] map = layerMap is { Count: > 0 } ? [.. layerMap] : [.. studentLayers];
        if (problems.Count == 0 && studentLayers.Count == 0)
        {
            problems.Add($"'{studentName}' has no layers named decoder.layer{{i}}.* as the built-in decoder names them");
        }
        else if (problems.Count == 0 && !studentLayers.SequenceEqual(Enumerable.Range(0, studentLayers.Count)))
        {
            problems.Add($"the layers of '{studentName}' are numbered {string.Join(", ", studentLayers)}, not 0 to {studentLayers.Count - 1}");
        }
        else if (problems.Count == 0 && map.Length != studentLayers.Count)
        {
            problems.Add($"the layer map [{string.Join(", ", map)}] names {map.Length} teacher layers for the {studentLayers.Count} layers of '{studentName}'; it needs one for each");
        }

        if (problems.Count == 0 && map.Where(l => !teacherLayers.Contains(l)).Distinct().ToList() is { Count: > 0 } missing)
        {
            problems.Add(layerMap is { Count: > 0 }
                ? $"the layer map names teacher layer(s) {string.Join(", ", missing)}; '{teacherName}' has layers {string.Join(", ", teacherLayers)}"
                : $"'{studentName}' has {studentLayers.Count} layers and '{teacherName}' only {teacherLayers.Count}: give a layer_map naming the teacher layer of each student layer");
        }

        if (problems.Count > 0)
        {
            throw new CompressionException([.. problems.Select(p => Diagnostic.Error(
                DiagnosticCodes.DecoderLayerMapInvalid,
                $"Cannot start decoder '{studentName}' from teacher '{teacherName}': {p}.",
                studentPath))]);
        }

        return map;
    }

    /// <summary>The layer numbers of a model's weights, ascending.</summary>
    private static List<int> Layers(ModelProto model) =>
        [.. model.Graph.Initializer.Select(i => TeacherInitialization.LayerOf(i.Name)).OfType<int>().Distinct().Order()];

    /// <summary>
    /// Layers whose int64 constants (the head reshapes' [0, 0, heads, head_width]) differ from their teacher layer's:
    /// the weights fit, but they would split into heads differently and compute something else.
    /// </summary>
    private static IEnumerable<string> HeadSplits(ModelProto student, ModelProto teacher, int[] map)
    {
        var teacherConstants = IntConstants(teacher).ToDictionary(c => c.Name, c => c.Values, StringComparer.Ordinal);
        foreach (var (name, values) in IntConstants(student).Where(c => TeacherInitialization.LayerOf(c.Name) is not null))
        {
            if (TeacherInitialization.TeacherName(name, map) is { } source && teacherConstants.TryGetValue(source, out var teacherValues) && !values.SequenceEqual(teacherValues))
            {
                yield return $"constant '{name}' is [{string.Join(", ", values)}] and the teacher's '{source}' [{string.Join(", ", teacherValues)}]: the layers split into heads differently (give the student the teacher's heads)";
            }
        }
    }

    private static IEnumerable<(string Name, long[] Values)> IntConstants(ModelProto model) =>
        model.Graph.Node
            .Where(n => n.OpType == "Constant" && n.Output.Count == 1 && n.Attribute.Count == 1 && n.Attribute[0].Name == "value"
                && n.Attribute[0].T.DataType == (int)TensorProto.Types.DataType.Int64)
            .Select(n => (n.Output[0], TensorData.ToInt64s(n.Attribute[0].T)));

    private static TensorProto? Misfit(List<string> problems, TensorProto target, TensorProto source, string sourceName)
    {
        problems.Add(string.Create(
            CultureInfo.InvariantCulture,
            $"student weight '{target.Name}' is {Describe(target)} and teacher weight '{sourceName}' {Describe(source)}"));
        return null;
    }

    private static string Describe(TensorProto tensor) =>
        $"{((TensorProto.Types.DataType)tensor.DataType).ToString().ToLowerInvariant()} [{string.Join(", ", tensor.Dims)}]";

    /// <summary>A 2-D float tensor transposed.</summary>
    private static TensorProto Transposed(TensorProto tensor)
    {
        var (rows, columns) = ((int)tensor.Dims[0], (int)tensor.Dims[1]);
        var values = TensorData.ToFloats(tensor);
        var transposed = new float[values.Length];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < columns; c++)
            {
                transposed[(c * rows) + r] = values[(r * columns) + c];
            }
        }

        return TensorData.FromFloats(tensor.Name, transposed, [columns, rows]);
    }
}
