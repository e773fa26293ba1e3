using ModelCompression.Architectures;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Quantization;

namespace ModelCompression.Core.Tests.Quantization;

public sealed class CheckSliceTests
{
    [Fact]
    public void A_slice_of_regression_targets_is_refused_rather_than_scored_as_always_agreeing()
    {
        var model = MlpBuilder.Build(new MlpOptions { Hidden = [4] }, new ArchitectureInputs([3], 1));
        var data = new Dataset(new float[6], [3], null, "slice.csv").WithTargets([1.5f, 2.5f], new DataOrigin("slice.csv", [2, 3]));

        var e = Assert.Throws<CompressionException>(() => new CheckSlice(model, data));

        Assert.Equal(DiagnosticCodes.CalibrationFailed, e.Code);
        Assert.Contains("task: regression model is not supported yet", e.Message, StringComparison.Ordinal);
    }
}
