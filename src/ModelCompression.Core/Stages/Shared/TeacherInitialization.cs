using System.Text.RegularExpressions;
using ModelCompression.Onnx.Proto;

namespace ModelCompression.Stages;

/// <summary>
/// Starts a student from the teacher's weights: every student initializer whose name and shape match a teacher
/// initializer takes the teacher's values. With a layer map, the student's layer i takes the teacher's layer
/// map[i] (DistilBERT's "every other layer"): a name's layer number is the one after "layer" or "layers"
/// (<c>encoder.layer3.attention.query.weight</c>, <c>encoder.layers.3.linear1.weight</c>).
/// </summary>
public static partial class TeacherInitialization
{
    /// <summary>A copy of <paramref name="student"/> with the teacher's matching initializers; the names copied, student names.</summary>
    public static (ModelProto Student, IReadOnlyList<string> Copied) Apply(ModelProto student, ModelProto teacher, IReadOnlyList<int>? layerMap)
    {
        var teacherByName = teacher.Graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var result = student.Clone();
        var copied = new List<string>();
        for (var i = 0; i < result.Graph.Initializer.Count; i++)
        {
            var target = result.Graph.Initializer[i];
            var sourceName = TeacherName(target.Name, layerMap);
            if (sourceName is not null
                && teacherByName.TryGetValue(sourceName, out var source)
                && source.DataType == target.DataType
                && source.Dims.SequenceEqual(target.Dims))
            {
                var copy = source.Clone();
                copy.Name = target.Name;
                result.Graph.Initializer[i] = copy;
                copied.Add(target.Name);
            }
        }

        return (result, copied);
    }

    /// <summary>The teacher initializer a student initializer comes from; null when the layer map leaves it out.</summary>
    internal static string? TeacherName(string studentName, IReadOnlyList<int>? layerMap)
    {
        if (layerMap is null || layerMap.Count == 0)
        {
            return studentName;
        }

        var match = LayerNumber().Match(studentName);
        if (!match.Success)
        {
            // Not inside a layer (embeddings, final norm, head): the same name.
            return studentName;
        }

        var layer = int.Parse(match.Groups["n"].Value, System.Globalization.CultureInfo.InvariantCulture);
        if (layer >= layerMap.Count)
        {
            return null;
        }

        var number = match.Groups["n"];
        return string.Concat(studentName.AsSpan(0, number.Index), layerMap[layer].ToString(System.Globalization.CultureInfo.InvariantCulture), studentName.AsSpan(number.Index + number.Length));
    }

    /// <summary>The layer number in an initializer's name (as <see cref="TeacherName"/> reads it), or null outside layers.</summary>
    internal static int? LayerOf(string name) =>
        LayerNumber().Match(name) is { Success: true } match ? int.Parse(match.Groups["n"].Value, System.Globalization.CultureInfo.InvariantCulture) : null;

    [GeneratedRegex(@"(?:^|[._/])layers?[._]?(?<n>\d+)(?=[._/])")]
    private static partial Regex LayerNumber();
}
