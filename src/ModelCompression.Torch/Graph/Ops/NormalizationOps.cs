using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ModelCompression.Torch.Graph;

/// <summary>BatchNormalization, LayerNormalization, Dropout, Softmax and LogSoftmax.</summary>
internal static class NormalizationOps
{
    public static void Register(IDictionary<string, OpKernel> kernels)
    {
        kernels["BatchNormalization"] = BatchNormalization;
        kernels["LayerNormalization"] = LayerNormalization;
        kernels["Dropout"] = Dropout;
        kernels["Softmax"] = c => [SoftmaxFamily(c, log: false)];
        kernels["LogSoftmax"] = c => [SoftmaxFamily(c, log: true)];
    }

    private static Tensor[] BatchNormalization(OpContext c)
    {
        var x = c.Input(0);
        var scale = c.Input(1);
        var bias = c.Input(2);
        var runningMean = c.Input(3);
        var runningVar = c.Input(4);
        var epsilon = c.Float("epsilon", 1e-5f);
        // The module's mode decides, not the node's training_mode attribute: exporters write training_mode=0
        // for models that are meant to be trained again.
        if (!c.Training)
        {
            return [F.batch_norm(x, runningMean, runningVar, scale, bias, false, 0, epsilon)];
        }

        // Training: normalize with the batch's statistics and move the running statistics toward them,
        // running = running * momentum + batch * (1 - momentum) (ONNX's momentum is 1 - PyTorch's). The running
        // statistics are the module's buffers, updated in place, so TrainableGraph.WriteBack writes them into the
        // graph. Torch's fused kernel does both in one pass (measured: the imported CNN's training forward took
        // 1.7x the hand-written one's when the statistics were computed apart). Like PyTorch, it folds the
        // unbiased batch variance into the running variance, where ONNX's reference uses the population
        // variance: a factor of 1 + 1/(n - 1) with n = batch x spatial elements per channel.
        var momentum = c.Float("momentum", 0.9f);
        Tensor y;
        if (runningMean.dtype == x.dtype && runningVar.dtype == x.dtype)
        {
            y = F.batch_norm(x, runningMean, runningVar, scale, bias, true, 1 - momentum, epsilon);
        }
        else
        {
            long[] reduce = [0, .. Enumerable.Range(2, (int)x.dim() - 2).Select(i => (long)i)];
            y = F.batch_norm(x, null, null, scale, bias, true, 0, epsilon);
            using (torch.no_grad())
            {
                var (batchVar, batchMean) = torch.var_mean(x, reduce, unbiased: true);
                runningMean.TimesInPlace(momentum).PlusScaledInPlace(batchMean.to_type(runningMean.dtype), 1 - momentum);
                runningVar.TimesInPlace(momentum).PlusScaledInPlace(batchVar.to_type(runningVar.dtype), 1 - momentum);
            }
        }

        return c.WantsOutput(1) || c.WantsOutput(2) ? [y, runningMean.detach().clone(), runningVar.detach().clone()] : [y];
    }

    private static Tensor[] LayerNormalization(OpContext c)
    {
        var x = c.Input(0);
        var scale = c.Input(1);
        var bias = c.OptionalInput(2);
        var rank = x.dim();
        var axis = OpMath.Axis(c.Int("axis", -1), rank);
        var epsilon = c.Float("epsilon", 1e-5f);
        long[] normalized = x.shape[(int)axis..];
        var dims = Enumerable.Range((int)axis, (int)(rank - axis)).Select(i => (long)i).ToArray();
        var fused = !c.WantsOutput(1) && !c.WantsOutput(2)
            && scale.shape.SequenceEqual(normalized) && (bias is null || bias.shape.SequenceEqual(normalized));
        if (fused)
        {
            return [F.layer_norm(x, normalized, scale, bias, epsilon)];
        }

        // Broadcastable scale/bias or requested Mean/InvStdDev outputs: spelled out.
        var mean = x.mean(dims, keepdim: true);
        var centered = x - mean;
        var invStdDev = torch.rsqrt((centered * centered).mean(dims, keepdim: true).Plus(epsilon));
        var y = centered * invStdDev * scale;
        if (bias is not null)
        {
            y = y.Plus(bias);
        }

        return [y, mean, invStdDev];
    }

    private static Tensor[] Dropout(OpContext c)
    {
        var x = c.Input(0);
        // Opset 12+: the ratio is an optional input; the training_mode input is ignored in favour of the module's mode.
        var ratio = c.OptionalInput(1) is Tensor r ? OpMath.Double(r) : c.Float("ratio", 0.5f);
        var wantsMask = c.WantsOutput(1);
        if (!c.Training || ratio <= 0)
        {
            return wantsMask ? [x, torch.ones_like(x, ScalarType.Bool)] : [x];
        }

        // The mask comes from the graph's own generator (see OpContext.Random); F.dropout would draw from the global one.
        using var threshold = ratio.ToScalar();
        var keep = torch.rand(x.shape, x.dtype, x.device, generator: c.Random).ge(threshold);
        var y = ratio >= 1 ? torch.zeros_like(x) : (x * keep).DividedBy(1 - ratio);
        return wantsMask ? [y, keep] : [y];
    }

    private static Tensor SoftmaxFamily(OpContext c, bool log)
    {
        var x = c.Input(0);
        if (c.Opset >= 13)
        {
            var axis = (int)OpMath.Axis(c.Int("axis", -1), x.dim());
            return log ? x.log_softmax(axis) : torch.softmax(x, axis);
        }

        // Before opset 13 the input is coerced to 2-D at axis (default 1) and normalized over the second part.
        var coerceAt = (int)OpMath.Axis(c.Int("axis", 1), x.dim());
        var outer = x.shape[..coerceAt].Aggregate(1L, (a, b) => a * b);
        var flat = x.reshape(outer, -1);
        var y = log ? flat.log_softmax(1) : torch.softmax(flat, 1);
        return y.reshape(x.shape);
    }
}
