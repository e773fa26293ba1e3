using ModelCompression.Stages;

namespace ModelCompression.Core.Tests.Pruning;

/// <summary>
/// The typed prune details give report.json the keys, text and order the stage wrote by hand before (each method its
/// own part, then the sizes and recovery).
/// </summary>
public sealed class PruneDetailsTests
{
    private static readonly PruneDetails Head = new() { Method = PruneMethod.Magnitude, RecoveryEpochs = 2, Alpha = 0.5, Temperature = 4, RecoveryTeacher = RecoveryTeacher.Dense };

    private static readonly string[] Tail =
        ["parameters_before", "parameters_after", "nonzero_parameters_before", "nonzero_parameters_after", "size_bytes_before", "size_bytes_after", "compressed_bytes_before", "compressed_bytes_after"];

    [Fact]
    public void Magnitude_pruning_lists_its_weights_then_its_schedule_then_the_sizes()
    {
        var details = StageDetails.Of(Head with
        {
            Skipped = ["a (Conv): excluded", "b (Gemm): excluded"],
            RampSteps = 30,
            MaskUpdateEvery = 3,
            WeightSparsity = new Dictionary<string, string> { ["sparsity.fc1.weight"] = "0.5000" },
            SparsityOverall = 0.49987,
            Speed = "no speed-up claimed",
            TargetSparsity = 0.5,
            Scope = PruneScope.Global,
            Schedule = "cubic",
            ParametersBefore = 10,
            Steps = 94,
            FinalLoss = 0.123456,
        });

        Assert.Equal(
            ["method", "recovery_epochs", "alpha", "temperature", "recovery_teacher", "skipped", "ramp_steps", "mask_update_every", "sparsity.fc1.weight", "sparsity_overall", "speed", "target_sparsity", "scope", "schedule", .. Tail, "steps", "final_loss"],
            details.Keys);
        Assert.Equal(("magnitude", "0.5", "dense", "a (Conv): excluded; b (Gemm): excluded"), (details["method"], details["alpha"], details["recovery_teacher"], details["skipped"]));
        Assert.Equal(("0.4999", "global", "94", "0.1235"), (details["sparsity_overall"], details["scope"], details["steps"], details["final_loss"]));
    }

    [Fact]
    public void Structured_pruning_says_its_criterion_and_target_before_what_it_skipped()
    {
        var details = StageDetails.Of(Head with
        {
            Method = PruneMethod.Structured,
            Criterion = UnitCriterion.Taylor,
            UnitTargetSparsity = 0.25,
            Skipped = [],
            Units = new Dictionary<string, string> { ["units.fc1"] = "256 -> 192" },
            Speed = "smaller dense layers",
        });

        Assert.Equal(
            ["method", "recovery_epochs", "alpha", "temperature", "recovery_teacher", "criterion", "target_sparsity", "skipped", "units.fc1", "speed", .. Tail],
            details.Keys);
        Assert.Equal(("structured", "taylor", "0.25", ""), (details["method"], details["criterion"], details["target_sparsity"], details["skipped"]));
    }

    [Fact]
    public void N_of_m_and_layer_dropping_write_their_own_keys()
    {
        var nm = StageDetails.Of(Head with { Method = PruneMethod.NM, Skipped = [], SparsityOverall = 0.5, Speed = "none", Pattern = "2:4" });
        var layers = StageDetails.Of(Head with { Method = PruneMethod.Layers, LayersDropped = [1, 3], LayersKept = [0, 2] });

        Assert.Equal(("nm", "2:4"), (nm["method"], nm["pattern"]));
        Assert.DoesNotContain("target_sparsity", nm.Keys);
        Assert.Equal(["method", "recovery_epochs", "alpha", "temperature", "recovery_teacher", "layers_dropped", "layers_kept", .. Tail], layers.Keys);
        Assert.Equal(("1, 3", "0, 2"), (layers["layers_dropped"], layers["layers_kept"]));
    }
}
