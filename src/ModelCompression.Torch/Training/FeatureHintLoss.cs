using System.Globalization;
using ModelCompression.Torch.Graph;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Feature (hint) distillation, after FitNets (Romero et al. 2015): each hint adds the mean squared error
/// between a student intermediate tensor and the teacher's values of one of its own, the loss being
/// <c>weight * mean over hints of MSE(project(s), t)</c>. Where the two shapes differ, a learned linear
/// projection maps the student's values onto the teacher's shape: along the one axis where they differ
/// (hidden width, conv channels, a transformer's model width), or, when they differ otherwise, over the
/// flattened sample. The projections train with the student and are dropped afterwards: the student's graph
/// never contains them.
/// </summary>
public sealed class FeatureHintLoss : IDisposable
{
    /// <summary>Largest flattened projection (weights) made, so a hint between two big feature maps is refused, not slow.</summary>
    internal const long MaxFlatProjectionWeights = 1L << 24;

    private readonly Projections _projections;
    private readonly IReadOnlyList<Hint> _hints;

    private FeatureHintLoss(IReadOnlyList<Hint> hints, Projections projections, double weight)
    {
        _hints = hints;
        _projections = projections;
        Weight = weight;
    }

    /// <summary>Weight of the hint term in the training loss.</summary>
    public double Weight { get; }

    /// <summary>The student tensors the hints read, in hint order.</summary>
    public IReadOnlyList<string> StudentTensors => [.. _hints.Select(h => h.Target.StudentTensor)];

    /// <summary>The projections' trainable parameters (empty when every hint matches its teacher's shape).</summary>
    public IReadOnlyList<Parameter> Parameters => [.. _projections.parameters()];

    /// <summary>The projections' tensors, for checkpoints, named apart from the student's.</summary>
    internal List<(string Name, Tensor Value)> State =>
        [.. TrainingCheckpoint.ModelState(_projections).Select(p => ("hint:" + p.Name, p.Value))];

    /// <summary>What a resumed run must agree on: every hint's tensors, shapes and projection.</summary>
    internal string Fingerprint => string.Create(
        CultureInfo.InvariantCulture,
        $"hint weight {Weight:R}|{string.Join(";", _hints.Select(h => $"{h.Target.StudentTensor}->{h.Target.TeacherTensor}[{string.Join(",", h.Target.Teacher.SampleShape)}]@{h.Axis}"))}");

    /// <summary>
    /// Plans the hints of <paramref name="data"/> for <paramref name="student"/>: runs one small batch to learn the
    /// student tensors' shapes and makes a projection for each hint whose shape differs from its teacher's.
    /// </summary>
    /// <param name="student">The student graph.</param>
    /// <param name="data">Training samples whose <see cref="TrainingSet.Hints"/> hold the teacher's values.</param>
    /// <param name="weight">Weight of the hint term.</param>
    /// <param name="seed">Seed of the projections' initial weights.</param>
    /// <exception cref="ArgumentException">(parameter "hints") A student tensor is not in the graph, or no projection fits the two shapes.</exception>
    public static FeatureHintLoss Create(TrainableGraph student, TrainingSet data, double weight, long seed)
    {
        ArgumentNullException.ThrowIfNull(student);
        ArgumentNullException.ThrowIfNull(data);
        if (weight <= 0 || !double.IsFinite(weight))
        {
            throw new ArgumentOutOfRangeException(nameof(weight), weight, "The hint weight must be above 0.");
        }

        var studentShapes = StudentSampleShapes(student, data);
        var projections = new Projections();
        var hints = new List<Hint>();
        // The projections' first weights come from the run's seed, like everything else in a training run.
        torch.manual_seed(seed);
        try
        {
            foreach (var (target, index) in data.Hints.Select((h, i) => (h, i)))
            {
                var studentShape = studentShapes[index];
                var axis = ProjectionAxis(target, studentShape);
                Linear? projection = null;
                if (axis != Hint.Same)
                {
                    var (input, output) = axis == Hint.Flat
                        ? (Size(studentShape), Size(target.Teacher.SampleShape))
                        : (studentShape[axis], target.Teacher.SampleShape[axis]);
                    projection = projections.Add(input, output);
                }

                hints.Add(new Hint(target, axis, projection));
            }
        }
        catch
        {
            projections.Dispose();
            throw;
        }

        return new FeatureHintLoss(hints, projections, weight);
    }

    /// <summary>The weighted hint term for one batch: <paramref name="studentValues"/> holds the hinted student tensors of the batch's <paramref name="rows"/>.</summary>
    public Tensor Compute(IReadOnlyDictionary<string, Tensor> studentValues, ReadOnlySpan<int> rows)
    {
        ArgumentNullException.ThrowIfNull(studentValues);
        Tensor? total = null;
        foreach (var hint in _hints)
        {
            var student = studentValues[hint.Target.StudentTensor];
            var teacher = hint.Target.Teacher.Batch(rows).to_type(student.dtype);
            var projected = hint.Axis switch
            {
                Hint.Same => student,
                Hint.Flat => hint.Projection!.forward(student.flatten(1)).reshape(teacher.shape),
                // The sample axis is one past the batch axis in the batch tensor.
                var axis => hint.Projection!.forward(student.movedim([axis + 1], [-1])).movedim([-1], [axis + 1]),
            };
            var error = nn.functional.mse_loss(projected, teacher);
            total = total is null ? error : total.Plus(error);
        }

        return total!.Times(Weight / _hints.Count);
    }

    /// <summary>Puts the projections in training or evaluation mode with the student.</summary>
    public void Train(bool training) => _projections.train(training);

    /// <inheritdoc />
    public void Dispose() => _projections.Dispose();

    /// <summary>
    /// Where the projection acts: <see cref="Hint.Same"/> when the shapes agree, the sample axis (0-based, no batch
    /// axis) when they have the same rank and differ in exactly that axis, else <see cref="Hint.Flat"/> (the whole
    /// sample) when that projection is small enough.
    /// </summary>
    internal static int ProjectionAxis(HintTarget target, long[] studentShape)
    {
        var teacherShape = target.Teacher.SampleShape;
        if (studentShape.SequenceEqual(teacherShape))
        {
            return Hint.Same;
        }

        if (studentShape.Length == teacherShape.Length)
        {
            var differing = Enumerable.Range(0, studentShape.Length).Where(i => studentShape[i] != teacherShape[i]).ToArray();
            if (differing.Length == 1)
            {
                return differing[0];
            }
        }

        if (Size(studentShape) * Size(teacherShape) <= MaxFlatProjectionWeights)
        {
            return Hint.Flat;
        }

        throw new ArgumentException(
            $"Hint '{target.StudentTensor}' [{string.Join(", ", studentShape)}] -> '{target.TeacherTensor}' [{string.Join(", ", teacherShape)}] (per sample): "
            + $"the shapes differ in more than one axis and a projection of the flattened samples would need {Size(studentShape) * Size(teacherShape):N0} weights. "
            + "Hint tensors that agree on every axis but one (e.g. the same spatial size, different channels) project along that axis.",
            "hints");
    }

    private static long Size(long[] shape) => shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The per-sample shape of every hinted student tensor, from a forward pass over one sample.</summary>
    private static long[][] StudentSampleShapes(TrainableGraph student, TrainingSet data)
    {
        var names = data.Hints.Select(h => h.StudentTensor).ToArray();
        var wasTraining = student.training;
        student.eval();
        try
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var values = student.Forward(data.Batch(new TrainableGraphInputs(student.InputNames), [0]), names);
            return [.. names.Select(n => values[n].shape.Length >= 1 && values[n].shape[0] == 1
                ? values[n].shape[1..]
                : throw new ArgumentException($"The student's '{n}' has shape [{string.Join(", ", values[n].shape)}] for one sample; a hint tensor's first axis is the batch.", "hints"))];
        }
        catch (ArgumentException e) when (e.ParamName == "extraOutputs")
        {
            throw new ArgumentException($"The student: {e.Message}", "hints", e);
        }
        finally
        {
            student.train(wasTraining);
        }
    }

    /// <summary>A hint and its projection.</summary>
    private sealed record Hint(HintTarget Target, int Axis, Linear? Projection)
    {
        /// <summary>The shapes agree: no projection.</summary>
        public const int Same = -1;

        /// <summary>The projection maps the flattened sample.</summary>
        public const int Flat = -2;
    }

    /// <summary>The projections as one module, so checkpoints and train/eval mode treat them together.</summary>
    private sealed class Projections() : nn.Module("hint_projections")
    {
        public Linear Add(long input, long output)
        {
            var projection = nn.Linear(input, output);
            register_module($"projection{named_children().Count()}", projection);
            return projection;
        }
    }
}
