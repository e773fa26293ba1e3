using ModelCompression.Torch.Training;

namespace ModelCompression.Data;

/// <summary>Makes the trainer's <see cref="TrainingSet"/> from a <see cref="Dataset"/> without copying it.</summary>
public static class DatasetTraining
{
    /// <summary>
    /// A training set whose inputs read <paramref name="data"/>'s tensors batch by batch (mapped files stay
    /// mapped), each feeding the graph input its binding names, in the binding's type and sample shape.
    /// </summary>
    /// <param name="data">The samples (and class labels or float targets, when the set has them).</param>
    /// <param name="bindings">From <see cref="DataSchema.Bind"/> (or <c>OnnxRunner.Bind</c>) against the student.</param>
    /// <param name="teacherLogits">Teacher logits, <paramref name="classes"/> per sample; null when not distilling.</param>
    /// <param name="classes">Number of classes.</param>
    /// <param name="hints">Feature-distillation targets on the same samples; null for none.</param>
    public static TrainingSet ToTrainingSet(this Dataset data, IReadOnlyList<InputBinding> bindings, float[]? teacherLogits, int classes, IReadOnlyList<HintTarget>? hints = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(bindings);
        var inputs = new List<InputArray>();
        foreach (var binding in bindings)
        {
            var tensor = data.Tensor(binding.Tensor) ?? throw new ArgumentException($"The data has no tensor '{binding.Tensor}'.", nameof(bindings));
            // One binding feeds the graph's only input whatever its name (DataSchema matched it by position).
            var name = bindings.Count == 1 ? null : binding.Input;
            inputs.Add(binding.ElementType == DataElementType.Float32
                ? InputArray.Float(name, tensor.Count, binding.SampleShape, tensor.CopyRows)
                : InputArray.Int64(name, tensor.Count, binding.SampleShape, tensor.CopyRows));
        }

        return new TrainingSet(inputs, data.Labels, teacherLogits, classes, hints) { Targets = data.Targets };
    }
}
