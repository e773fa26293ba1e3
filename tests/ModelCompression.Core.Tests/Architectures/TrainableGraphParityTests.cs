using ModelCompression.Torch.Graph;
using ModelCompression.Torch.Native;
using TorchSharp;
using static ModelCompression.Core.Tests.Architectures.ArchitectureTestSupport;

namespace ModelCompression.Core.Tests.Architectures;

/// <summary>
/// The built-in graphs take the trainer's path: imported into TorchSharp, the module's forward must match
/// ONNX Runtime on the same graph and input.
/// </summary>
public sealed class TrainableGraphParityTests
{
    private const double Tolerance = 1e-4;

    public TrainableGraphParityTests() => TorchNativeLoader.EnsureLoaded();

    [Theory]
    [MemberData(nameof(CaseIds), MemberType = typeof(ArchitectureTestSupport))]
    public void Imported_module_matches_onnx_runtime(string id)
    {
        var c = Case(id);
        var model = c.Build();
        using var scope = torch.NewDisposeScope();
        using var graph = TrainableGraph.Import(model);
        graph.eval();

        foreach (var batch in new[] { 1, 5 })
        {
            var inputs = RandomInputs(c, batch, seed: 10 + batch);
            var expected = RunOrt(model, inputs).Values;
            var tensors = inputs.ToDictionary(
                i => i.Key,
                i => i.Value.Data switch
                {
                    float[] f => torch.tensor(f, i.Value.Shape),
                    long[] l => torch.tensor(l, i.Value.Shape),
                    _ => throw new ArgumentException("float or long inputs only"),
                });
            var actual = graph.Forward(tensors)["logits"].detach().cpu().contiguous().data<float>().ToArray();

            var error = RelativeError(actual, expected);
            Assert.True(error <= Tolerance, $"batch {batch}: relative error {error}");
        }
    }

    private static double RelativeError(float[] actual, float[] expected)
    {
        Assert.Equal(expected.Length, actual.Length);
        var scale = Math.Max(expected.Max(v => Math.Abs((double)v)), 1e-6);
        return actual.Zip(expected, (a, e) => Math.Abs((double)a - e)).Max() / scale;
    }
}
