using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Pruning;

/// <summary>
/// Keeps pruned weights at zero while a graph trains: after every optimizer step (the trainer's
/// <c>AfterOptimizerStep</c> hook) the masks are re-applied, and whenever the scheduled sparsity rises they are
/// recomputed from the weights' current magnitudes. Zeroed weights stay zero, so a rising sparsity only ever
/// adds weights to the pruned set.
/// </summary>
internal sealed class MaskedWeights : IDisposable
{
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly Func<IReadOnlyList<float[]>, double, bool[][]> _masksFor;
    private readonly Func<long, double> _sparsityAt;
    private Tensor[]? _masks;
    private double _sparsity = double.NaN;

    /// <param name="parameters">The weights, in the order <paramref name="masksFor"/> takes them.</param>
    /// <param name="masksFor">Masks (true keeps) for the current weights at a sparsity.</param>
    /// <param name="sparsityAt">The sparsity in force after a number of optimizer steps.</param>
    public MaskedWeights(IReadOnlyList<Parameter> parameters, Func<IReadOnlyList<float[]>, double, bool[][]> masksFor, Func<long, double> sparsityAt)
    {
        _parameters = parameters;
        _masksFor = masksFor;
        _sparsityAt = sparsityAt;
    }

    /// <summary>The sparsity the current masks were made for; NaN before the first call.</summary>
    public double Sparsity => _sparsity;

    /// <summary>Updates the masks if the schedule says so and applies them; call inside <c>no_grad</c>.</summary>
    public void AfterStep(long step) => Enforce(_sparsityAt(step));

    /// <summary>Makes sure the weights are masked at (at least) <paramref name="sparsity"/>.</summary>
    public void Enforce(double sparsity)
    {
        using var noGrad = torch.no_grad();
        if (_masks is null || sparsity > _sparsity)
        {
            Recompute(sparsity);
        }

        for (var i = 0; i < _parameters.Count; i++)
        {
            _parameters[i].mul_(_masks![i]);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var mask in _masks ?? [])
        {
            mask.Dispose();
        }

        _masks = null;
    }

    private void Recompute(double sparsity)
    {
        float[][] weights;
        using (var scope = torch.NewDisposeScope())
        {
            weights = [.. _parameters.Select(p => p.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray())];
        }

        var keep = _masksFor(weights, sparsity);
        Dispose();
        _masks = new Tensor[_parameters.Count];
        for (var i = 0; i < _parameters.Count; i++)
        {
            var parameter = _parameters[i];
            var values = keep[i].Select(k => k ? 1f : 0f).ToArray();
            _masks[i] = torch.tensor(values, parameter.shape, dtype: parameter.dtype, device: parameter.device).DetachFromDisposeScope();
        }

        _sparsity = sparsity;
    }
}
