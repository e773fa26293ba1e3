using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Tests.Training;

/// <summary>
/// Our optimizers against PyTorch's on a fixed problem: loss = sum((w * x - y)^2), five steps, float64. The
/// expected weights are torch.optim's, printed by optimizer_reference.py next to this file.
/// </summary>
public sealed class ParameterOptimizerTests
{
    public ParameterOptimizerTests() => TorchNativeLoader.EnsureLoaded();

    [Theory]
    [InlineData(OptimizerKind.Adam, 0.1, 0.01, 0.0, new[] { 0.796213562055, -0.693416206456, -0.380579831528 })]
    [InlineData(OptimizerKind.AdamW, 0.1, 0.1, 0.0, new[] { 0.771955336953, -0.674090874295, -0.37578640739 })]
    [InlineData(OptimizerKind.Sgd, 0.05, 0.01, 0.9, new[] { 0.823869086579, -2.076328146013, -0.935894744244 })]
    [InlineData(OptimizerKind.Sgd, 0.05, 0.0, 0.0, new[] { 0.502137321289, -1.016474240234, -0.453344 })]
    public void Five_steps_match_torch_optim(OptimizerKind kind, double learningRate, double weightDecay, double momentum, double[] expected)
    {
        using var scope = NewDisposeScope();
        var w = new TorchSharp.Modules.Parameter(tensor(new[] { 0.3, -0.2, 0.1 }, ScalarType.Float64));
        var x = tensor(new[] { 0.5, -1.5, 2.0 }, ScalarType.Float64);
        var y = tensor(new[] { 1.0, 2.0, -1.0 }, ScalarType.Float64);
        using var optimizer = new ParameterOptimizer(kind, [w], learningRate, weightDecay, momentum);
        for (var step = 0; step < 5; step++)
        {
            optimizer.ZeroGrad();
            var residual = (w * x) - y;
            (residual * residual).sum().backward();
            optimizer.Step();
        }

        var actual = w.detach().data<double>().ToArray();
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], actual[i], 1e-9);
        }
    }
}
