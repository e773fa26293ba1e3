using ModelCompression.Architectures;
using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using TorchSharp.Modules;
using static ModelCompression.Torch.Tests.Training.TrainerTestSupport;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>
/// What a training step costs beyond the model's own work, counted in native tensors: on small students each one
/// (a managed object, a native allocation, often a kernel) is a measurable share of the step (bench/README.md,
/// "Trainer vs the bare loop: the profile").
/// </summary>
[Collection(nameof(TrainerCollection))]
public sealed class StepCostTests
{
    private static readonly DistillationLoss Loss = new(Alpha: 0.5, Temperature: 4);

    public StepCostTests() => TorchNativeLoader.EnsureLoaded();

    [Fact]
    public void Gemm_layers_run_as_one_tensor_per_node_in_training()
    {
        // MlpBuilder's graph: Gemm (transB = 1, W stored [out, in]), Relu, Gemm.
        using var graph = TrainableGraph.Import(Mlp(dropout: 0));
        graph.train();
        using var scope = torch.NewDisposeScope();
        var input = torch.tensor(Graph.GraphTestSupport.RandomFloats(8 * 12, 3), [8, 12]);
        var before = scope.DisposablesCount;

        var output = graph.Forward(input);

        Assert.Equal([8, 4], output.shape);
        Assert.Equal(3, graph.PlanStepTypes.Count);
        // One output per node: no transposed views of the weights between the parameters and linear.
        Assert.Equal(3, scope.DisposablesCount - before);
    }

    [Fact]
    public void A_convolutional_student_runs_as_one_tensor_per_node_in_training()
    {
        // CnnBuilder's graph starts with a Reshape of [batch, 28, 28] to a constant [0, 1, 28, 28], run every step.
        var model = CnnBuilder.Build(
            new CnnOptions { Channels = [4, 8], BatchNorm = true, Pooling = "max", Head = CnnHead.Flatten, HeadHidden = 16, Dropout = 0, Seed = 1 },
            new ArchitectureInputs([28, 28], 10));
        using var graph = TrainableGraph.Import(model);
        graph.train();
        using var scope = torch.NewDisposeScope();
        var input = torch.tensor(Graph.GraphTestSupport.RandomFloats(2 * 28 * 28, 5), [2, 28, 28]);
        var before = scope.DisposablesCount;

        var output = graph.Forward(input);

        Assert.Equal([2, 10], output.shape);
        Assert.Contains("Reshape", graph.PlanStepTypes);
        // A Dropout of ratio 0 hands its input on.
        Assert.Equal(graph.PlanStepTypes.Count(type => type != "Dropout"), scope.DisposablesCount - before);
    }

    [Fact]
    public void A_trainer_step_makes_no_more_tensors_than_the_same_step_written_by_hand()
    {
        var data = Synthetic(64);
        using var graph = TrainableGraph.Import(Mlp(dropout: 0));
        var profile = new StepProfile();
        StepProfile.Current = profile;
        try
        {
            ClassificationTrainer.Train(graph, data, Loss, new TrainingOptions(1, 16, 1e-3, 1));
        }
        finally
        {
            StepProfile.Current = null;
        }

        var hand = HandStepTensors(data);

        Assert.Equal(4, profile.Steps);
        Assert.True(
            profile.Tensors / profile.Steps <= hand,
            $"The trainer's step made {(double)profile.Tensors / profile.Steps} tensors; the hand-written step makes {hand}.");
    }

    [Fact]
    public void The_loss_told_the_batch_is_labelled_makes_the_same_value_without_reading_the_labels_back()
    {
        using var scope = torch.NewDisposeScope();
        var student = torch.tensor(Graph.GraphTestSupport.RandomFloats(6 * 4, 8, 3), [6, 4]);
        var teacher = torch.tensor(Graph.GraphTestSupport.RandomFloats(6 * 4, 9, 3), [6, 4]);
        var labels = torch.tensor(new long[] { 0, TrainingSet.NoLabel, 3, 1, TrainingSet.NoLabel, 2 }, [6]);

        var start = scope.DisposablesCount;
        var asked = Loss.Compute(student, labels, teacher);
        var askedTensors = scope.DisposablesCount - start;
        start = scope.DisposablesCount;
        var told = Loss.Compute(student, labels, teacher, anyLabelled: true);
        var toldTensors = scope.DisposablesCount - start;

        Assert.Equal(asked.item<float>(), told.item<float>());
        // The check the caller answered is two kernels (labels != NoLabel, any) and a read back to the host.
        Assert.Equal(askedTensors - 2, toldTensors);
    }

    /// <summary>The tensors of one distillation step of the same MLP written by hand as a TorchSharp user would.</summary>
    private static long HandStepTensors(TrainingSet data)
    {
        using var fc1 = nn.Linear(12, 16);
        using var fc2 = nn.Linear(16, 4);
        Parameter[] parameters = [.. fc1.parameters(), .. fc2.parameters()];
        using var optimizer = new ParameterOptimizer(OptimizerKind.Adam, parameters, 1e-3, 0, 0);
        var inputs = new float[16 * 12];
        var teacher = new float[16 * 4];
        var labels = new long[16];
        Array.Copy(data.TeacherLogits!, teacher, teacher.Length);
        Array.Copy(data.Labels!, labels, labels.Length);
        long tensors = 0;
        // Two steps, counting the second: from then on every parameter has a gradient for ZeroGrad to clear.
        for (var step = 0; step < 2; step++)
        {
            using var scope = torch.NewDisposeScope();
            var x = torch.tensor(inputs, [16, 12]);
            var y = torch.tensor(labels, [16]);
            var t = torch.tensor(teacher, [16, 4]);
            optimizer.ZeroGrad();
            var logits = fc2.forward(nn.functional.relu(fc1.forward(x)));
            // The loss written out, as the bench's bare loop does: alpha T² KL(teacher || student) + (1 - alpha) CE.
            var teacherLogProbs = nn.functional.log_softmax(t.DividedBy(4), 1);
            var studentLogProbs = nn.functional.log_softmax(logits.DividedBy(4), 1);
            var kl = (teacherLogProbs.exp() * (teacherLogProbs - studentLogProbs)).sum(1).mean().Times(16);
            var loss = kl.Times(0.5).Plus(nn.functional.cross_entropy(logits, y).Times(0.5));
            loss.backward();
            optimizer.Step();
            tensors = scope.DisposablesCount;
        }

        return tensors;
    }
}
