using ModelCompression.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelCompression.Torch.Graph;

/// <summary>What the fusion pass may rely on about the graph's values, known at import.</summary>
/// <param name="Observable">Values that must stay computed: the graph outputs and the values the caller keeps.</param>
/// <param name="FloatTensorShape">The shape of a float initializer or Constant output (trainable or not); null for anything else.</param>
/// <param name="FixedScalar">The value and rank of a one-element float constant that does not train; null for anything else.</param>
internal sealed record FusionFacts(
    IReadOnlySet<string> Observable,
    Func<string, long[]?> FloatTensorShape,
    Func<string, (double Value, long Rank)?> FixedScalar);

/// <summary>
/// Rewrites a <see cref="TrainableGraph"/>'s execution plan so that two patterns ONNX writers emit run as one
/// torch kernel each: MatMul by a 2-D weight then Add of a 1-D bias as <c>linear</c>, and the Erf spelling of
/// exact GELU as <c>gelu</c>. The graph is not changed, only how it is run.
/// </summary>
/// <remarks>
/// Why: the plan keeps every node's output alive until the step ends (the dispose scope owns it), so each extra
/// node of a pattern costs a batch-sized tensor, and five elementwise kernels with their backward are slower than
/// one. Only exact rewrites are made: a pattern fuses when every value inside it is read once, by the next node of
/// the pattern, and is neither a graph output nor a kept value; the GELU constants must be 1/√2 (or √2 for
/// Div), 1 and 0.5 within <see cref="ConstantTolerance"/> and must not train.
/// </remarks>
internal static class PlanFusion
{
    /// <summary>The plan step type of a fused MatMul + Add.</summary>
    public const string LinearStep = "MatMul+Add";

    /// <summary>The plan step type of a fused Erf GELU.</summary>
    public const string GeluStep = "Erf GELU";

    /// <summary>How far a GELU constant may be from its exact value: float32 rounding of 1/√2 and √2 is ~2e-8.</summary>
    private const double ConstantTolerance = 1e-6;

    /// <summary>
    /// The fused plan. <paramref name="fusedAway"/> receives, for every value no longer computed, the fused
    /// pattern it was inside (for error messages).
    /// </summary>
    public static List<(NodeProto Node, OpKernel Kernel)> Fuse(
        IReadOnlyList<(NodeProto Node, OpKernel Kernel)> plan,
        FusionFacts facts,
        IDictionary<string, string> fusedAway)
    {
        var fusion = new Fusion(plan, facts, fusedAway);
        for (var i = 0; i < plan.Count; i++)
        {
            fusion.TryLinear(i);
        }

        for (var i = 0; i < plan.Count; i++)
        {
            fusion.TryGelu(i);
        }

        return fusion.Result();
    }

    private sealed class Fusion
    {
        private readonly IReadOnlyList<(NodeProto Node, OpKernel Kernel)> _plan;
        private readonly FusionFacts _facts;
        private readonly IDictionary<string, string> _fusedAway;
        private readonly Dictionary<string, int> _uses = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int> _producer = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int> _lastConsumer = new(StringComparer.Ordinal);
        private readonly (NodeProto Node, OpKernel Kernel)?[] _replacement;
        private readonly bool[] _removed;

        public Fusion(IReadOnlyList<(NodeProto Node, OpKernel Kernel)> plan, FusionFacts facts, IDictionary<string, string> fusedAway)
        {
            _plan = plan;
            _facts = facts;
            _fusedAway = fusedAway;
            _replacement = new (NodeProto, OpKernel)?[plan.Count];
            _removed = new bool[plan.Count];
            for (var i = 0; i < plan.Count; i++)
            {
                foreach (var input in plan[i].Node.Input.Where(n => n.Length > 0))
                {
                    _uses[input] = _uses.GetValueOrDefault(input) + 1;
                    _lastConsumer[input] = i;
                }

                foreach (var output in plan[i].Node.Output.Where(n => n.Length > 0))
                {
                    _producer[output] = i;
                }
            }
        }

        /// <summary>MatMul(x, W) read only by Add(., b), W [in, out] and b [out] known tensors: linear(x, Wᵀ, b).</summary>
        public void TryLinear(int matmulIndex)
        {
            var matmul = _plan[matmulIndex].Node;
            if (!IsFree(matmulIndex) || !Is(matmul, "MatMul", 2)
                || _facts.FloatTensorShape(matmul.Input[1]) is not [_, var width]
                || SoleConsumer(matmul.Output[0]) is not int addIndex
                || !Is(_plan[addIndex].Node, "Add", 2))
            {
                return;
            }

            var add = _plan[addIndex].Node;
            var bias = OtherOperand(add, matmul.Output[0]);
            if (_facts.FloatTensorShape(bias) is not [var biasWidth] || biasWidth != width)
            {
                return;
            }

            // Wᵀ is a view: linear's addmm reads it through BLAS's transpose flag, and the gradient flows back
            // into W's [in, out] layout without a copy of W per step.
            Replace(
                LinearStep,
                "one linear",
                [matmulIndex, addIndex],
                [matmul.Input[0], matmul.Input[1], bias],
                add.Output[0],
                c => [F.linear(c.Input(0), c.Input(1).t(), c.Input(2))]);
        }

        /// <summary>
        /// x·(1/√2) or x/√2, Erf, +1, then the product with x and 0.5 in any of its three groupings:
        /// (x·0.5)·o (ModelCompression's builders), (x·o)·0.5 (PyTorch's exporter), x·(o·0.5).
        /// </summary>
        public void TryGelu(int erfIndex)
        {
            var erf = _plan[erfIndex].Node;
            if (!IsFree(erfIndex) || !Is(erf, "Erf", 1)
                || !Internal(erf.Input[0]) || !_producer.TryGetValue(erf.Input[0], out var scaleIndex) || !IsFree(scaleIndex)
                || ScaledInput(_plan[scaleIndex].Node) is not (string x, long scaleRank)
                || SoleConsumer(erf.Output[0]) is not int onePlusIndex || !Is(_plan[onePlusIndex].Node, "Add", 2)
                || FixedNear(OtherOperand(_plan[onePlusIndex].Node, erf.Output[0]), 1) is not long oneRank)
            {
                return;
            }

            var onePlus = _plan[onePlusIndex].Node.Output[0];
            if (SoleConsumer(onePlus) is not int productIndex || !Is(_plan[productIndex].Node, "Mul", 2))
            {
                return;
            }

            var partner = OtherOperand(_plan[productIndex].Node, onePlus);
            int innerIndex, finalIndex;
            long halfRank;
            var partnerHalfRank = FixedNear(partner, 0.5);
            if (partner == x || partnerHalfRank is not null)
            {
                // (x·o)·0.5 or x·(o·0.5): the product is read once, by a Mul with the factor still missing.
                var product = _plan[productIndex].Node.Output[0];
                if (SoleConsumer(product) is not int outerIndex || !Is(_plan[outerIndex].Node, "Mul", 2))
                {
                    return;
                }

                var missing = OtherOperand(_plan[outerIndex].Node, product);
                long? found = partner == x ? FixedNear(missing, 0.5) : missing == x ? partnerHalfRank : null;
                if (found is not long r)
                {
                    return;
                }

                (innerIndex, finalIndex, halfRank) = (productIndex, outerIndex, r);
            }
            else
            {
                // (x·0.5)·o: the partner is Mul(x, 0.5), read only here.
                if (!Internal(partner) || !_producer.TryGetValue(partner, out var halfProducer) || !IsFree(halfProducer)
                    || !Is(_plan[halfProducer].Node, "Mul", 2)
                    || FixedNear(OtherOperand(_plan[halfProducer].Node, x), 0.5) is not long r
                    || !_plan[halfProducer].Node.Input.Contains(x))
                {
                    return;
                }

                (innerIndex, finalIndex, halfRank) = (halfProducer, productIndex, r);
            }

            // A constant of higher rank than x broadcasts x up to that rank; gelu alone would not.
            var rank = Math.Max(scaleRank, Math.Max(oneRank, halfRank));
            Replace(
                GeluStep,
                "one gelu",
                [scaleIndex, erfIndex, onePlusIndex, innerIndex, finalIndex],
                [x],
                _plan[finalIndex].Node.Output[0],
                c =>
                {
                    var input = c.Input(0);
                    var y = F.gelu(input, TorchSharp.Modules.GELU.Approximate.none);
                    return [input.dim() >= rank ? y : y.reshape([.. Enumerable.Repeat(1L, (int)(rank - input.dim())), .. input.shape])];
                });
        }

        public List<(NodeProto Node, OpKernel Kernel)> Result()
        {
            var result = new List<(NodeProto, OpKernel)>(_plan.Count);
            for (var i = 0; i < _plan.Count; i++)
            {
                if (_replacement[i] is { } fused)
                {
                    result.Add(fused);
                }
                else if (!_removed[i])
                {
                    result.Add(_plan[i]);
                }
            }

            return result;
        }

        /// <summary>The input x of Mul(x, 1/√2) (either order) or Div(x, √2), with the constant's rank.</summary>
        private (string X, long Rank)? ScaledInput(NodeProto scale)
        {
            if (Is(scale, "Div", 2))
            {
                return FixedNear(scale.Input[1], Math.Sqrt(2)) is long rank ? (scale.Input[0], rank) : null;
            }

            if (!Is(scale, "Mul", 2))
            {
                return null;
            }

            foreach (var (x, constant) in new[] { (scale.Input[0], scale.Input[1]), (scale.Input[1], scale.Input[0]) })
            {
                if (FixedNear(constant, 1 / Math.Sqrt(2)) is long rank)
                {
                    return (x, rank);
                }
            }

            return null;
        }

        /// <summary>The rank of a fixed one-element constant within tolerance of <paramref name="expected"/>; null otherwise.</summary>
        private long? FixedNear(string name, double expected) =>
            _facts.FixedScalar(name) is var (value, rank) && Math.Abs(value - expected) <= ConstantTolerance ? rank : null;

        /// <summary>The node that reads <paramref name="value"/> when it is read exactly once and need not stay observable.</summary>
        private int? SoleConsumer(string value) =>
            Internal(value) && _lastConsumer.TryGetValue(value, out var index) && IsFree(index) ? index : null;

        private bool Internal(string value) => _uses.GetValueOrDefault(value) == 1 && !_facts.Observable.Contains(value);

        private bool IsFree(int index) => !_removed[index] && _replacement[index] is null;

        private void Replace(string stepType, string runAs, int[] indices, string[] inputs, string output, OpKernel kernel)
        {
            var nodes = indices.Select(i => _plan[i].Node).ToList();
            var names = string.Join(", ", nodes.Select(n => $"{n.OpType} '{n.Name}'"));
            var fused = new NodeProto { Name = string.Join("+", nodes.Select(n => n.Name)), OpType = stepType };
            fused.Input.AddRange(inputs);
            fused.Output.Add(output);
            var last = indices.Max();
            foreach (var index in indices)
            {
                _removed[index] = index != last;
                foreach (var value in _plan[index].Node.Output.Where(v => v != output))
                {
                    _fusedAway[value] = $"the {stepType} pattern ({names}), which runs as {runAs}";
                }
            }

            _replacement[last] = (fused, kernel);
        }

        private static bool Is(NodeProto node, string opType, int inputs) =>
            (node.Domain.Length == 0 || node.Domain == "ai.onnx") && node.OpType == opType
            && node.Input.Count == inputs && node.Output.Count == 1 && node.Input.All(n => n.Length > 0);

        /// <summary>The operand of a two-input node that is not <paramref name="value"/> (read once, so exactly one is).</summary>
        private static string OtherOperand(NodeProto node, string value) => node.Input[0] == value ? node.Input[1] : node.Input[0];
    }
}
