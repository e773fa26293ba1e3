using Microsoft.ML.OnnxRuntime;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;

namespace ModelCompression.Stages;

/// <summary>
/// The acceptance test of every transformed model: it passes <see cref="OnnxChecker"/>, ONNX Runtime loads it,
/// and a forward pass over a few held-out samples gives finite outputs of the right width. A model that fails
/// is never handed on (MC2061).
/// </summary>
internal static class TransformedModelCheck
{
    private const int ProbeSamples = 8;

    /// <summary>Throws MC2061 unless <paramref name="modelPath"/> is valid and runs.</summary>
    public static void Verify(string modelPath, StageContext context, string stage)
    {
        var problems = OnnxChecker.Check(OnnxModelFile.Load(modelPath), modelPath);
        if (problems.Count > 0)
        {
            throw new CompressionException(
                [Diagnostic.Error(DiagnosticCodes.TransformedModelRejected, $"{stage}: the transformed model is not a valid ONNX graph (a bug: please report it).", modelPath), .. problems]);
        }

        var probe = context.Test.Select([.. Enumerable.Range(0, Math.Min(ProbeSamples, context.Test.Count))], $"{stage} check");
        float[] outputs;
        try
        {
            using var runner = new OnnxRunner(modelPath, threads: 1);
            if (runner.OutputWidth != context.Classes)
            {
                throw Rejected(stage, $"it outputs {runner.OutputWidth} classes, not {context.Classes}", modelPath);
            }

            outputs = runner.Run(probe, probe.Count);
        }
        catch (OnnxRuntimeException e)
        {
            throw Rejected(stage, $"ONNX Runtime cannot run it: {e.Message}", modelPath);
        }
        catch (CompressionException e) when (e.Code != DiagnosticCodes.TransformedModelRejected)
        {
            throw Rejected(stage, e.Diagnostics[0].Message, modelPath);
        }

        if (outputs.Any(v => !float.IsFinite(v)))
        {
            throw Rejected(stage, "its outputs are not finite", modelPath);
        }
    }

    private static CompressionException Rejected(string stage, string why, string modelPath) =>
        CompressionException.Error(DiagnosticCodes.TransformedModelRejected, $"{stage}: the transformed model was not accepted: {why}.", modelPath);
}
