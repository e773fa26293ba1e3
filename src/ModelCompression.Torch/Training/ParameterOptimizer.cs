using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>
/// Adam, AdamW and SGD with momentum, with PyTorch's update rules (torch.optim, default betas 0.9/0.999,
/// eps 1e-8, no dampening, no Nesterov).
/// </summary>
/// <remarks>
/// Written here rather than taken from TorchSharp's torch.optim because TorchSharp 0.107's optimizers pass
/// implicitly converted Scalars to native code, which a garbage collection can free mid-call (see
/// <see cref="ScalarArithmetic"/>): the benchmark aborted in Adam.step in 4 runs of 7. The state is
/// allocated up front, so a checkpoint holds a fixed list of named tensors.
/// </remarks>
public sealed class ParameterOptimizer : IDisposable
{
    private const double Beta1 = 0.9;
    private const double Beta2 = 0.999;
    private const double Epsilon = 1e-8;

    private readonly OptimizerKind _kind;
    private readonly Parameter[] _parameters;
    private readonly double _weightDecay;
    private readonly double _momentum;
    private readonly Tensor[] _first;   // Adam: first moment; SGD: momentum buffer (empty without momentum).
    private readonly Tensor[] _second;  // Adam: second moment; SGD: none.

    /// <summary>Creates the optimizer and its zeroed state for <paramref name="parameters"/>.</summary>
    public ParameterOptimizer(OptimizerKind kind, Parameter[] parameters, double learningRate, double weightDecay, double momentum)
    {
        _kind = kind;
        _parameters = parameters;
        _weightDecay = weightDecay;
        _momentum = kind == OptimizerKind.Sgd ? momentum : 0;
        LearningRate = learningRate;
        using (no_grad())
        {
            var needsFirst = kind != OptimizerKind.Sgd || _momentum > 0;
            _first = needsFirst ? [.. parameters.Select(p => zeros_like(p).DetachFromDisposeScope())] : [];
            _second = kind != OptimizerKind.Sgd ? [.. parameters.Select(p => zeros_like(p).DetachFromDisposeScope())] : [];
        }
    }

    /// <summary>The learning rate of the next step (the schedule sets it before every step).</summary>
    public double LearningRate { get; set; }

    /// <summary>Steps taken; Adam's bias correction depends on it.</summary>
    public long Steps { get; set; }

    /// <summary>Forgets the gradients of the last step.</summary>
    public void ZeroGrad()
    {
        foreach (var parameter in _parameters)
        {
            parameter.grad?.zero_();
        }
    }

    /// <summary>Updates every parameter that has a gradient.</summary>
    public void Step()
    {
        Steps++;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        for (var i = 0; i < _parameters.Length; i++)
        {
            var parameter = _parameters[i];
            if (parameter.grad is not { } gradient)
            {
                continue;
            }

            switch (_kind)
            {
                case OptimizerKind.Sgd:
                    SgdStep(i, parameter, gradient);
                    break;
                default:
                    AdamStep(i, parameter, gradient);
                    break;
            }
        }
    }

    /// <summary>The state a resumed run needs, in a fixed order.</summary>
    public IReadOnlyList<(string Name, Tensor Value)> State() =>
    [
        .. _first.Select((t, i) => ($"optimizer:first:{i}", t)),
        .. _second.Select((t, i) => ($"optimizer:second:{i}", t)),
    ];

    /// <summary>Frees the state tensors.</summary>
    public void Dispose()
    {
        foreach (var tensor in _first.Concat(_second))
        {
            tensor.Dispose();
        }
    }

    private void AdamStep(int i, Parameter parameter, Tensor gradient)
    {
        if (_weightDecay > 0)
        {
            if (_kind == OptimizerKind.AdamW)
            {
                // Decoupled: the weights shrink directly, the moments never see the decay.
                parameter.TimesInPlace(1 - (LearningRate * _weightDecay));
            }
            else
            {
                // Adam's L2: the decay is part of the gradient.
                gradient = gradient.Plus(parameter.detach().Times(_weightDecay));
            }
        }

        var first = _first[i];
        var second = _second[i];
        first.TimesInPlace(Beta1).PlusScaledInPlace(gradient, 1 - Beta1);
        second.TimesInPlace(Beta2).PlusProductInPlace(gradient, gradient, 1 - Beta2);
        var biasCorrection1 = 1 - Math.Pow(Beta1, Steps);
        var biasCorrection2 = 1 - Math.Pow(Beta2, Steps);
        var denominator = second.sqrt().DividedBy(Math.Sqrt(biasCorrection2)).Plus(Epsilon);
        parameter.PlusQuotientInPlace(first, denominator, -LearningRate / biasCorrection1);
    }

    private void SgdStep(int i, Parameter parameter, Tensor gradient)
    {
        if (_weightDecay > 0)
        {
            gradient = gradient.Plus(parameter.detach().Times(_weightDecay));
        }

        if (_momentum > 0)
        {
            // PyTorch starts the buffer at the first gradient; from zeros, momentum * 0 + gradient is the same.
            gradient = _first[i].TimesInPlace(_momentum).PlusScaledInPlace(gradient, 1);
        }

        parameter.PlusScaledInPlace(gradient, -LearningRate);
    }
}
