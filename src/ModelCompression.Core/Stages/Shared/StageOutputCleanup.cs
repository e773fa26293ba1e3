using System.Globalization;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;

namespace ModelCompression.Stages;

/// <summary>
/// What every stage's output goes through before it is cached and handed on: dead-code elimination (a stage that
/// drops layers or swaps float weights for quantized ones leaves nodes and initializers nothing reads), then the
/// structural check of the result. Run once by the pipeline for every stage, so no stage has to remember it.
/// </summary>
internal static class StageOutputCleanup
{
    /// <summary>
    /// Removes the dead code of the model at <paramref name="modelPath"/> (rewriting the file only when something
    /// was removed) and checks what is left: MC2061 when it is not a valid graph. Returns <paramref name="result"/>
    /// with what was removed in its details.
    /// </summary>
    public static StageResult Apply(string modelPath, StageResult result, StageContext context)
    {
        var model = OnnxModelFile.Load(modelPath);
        var removed = DeadCode.Eliminate(model);
        var problems = OnnxChecker.Check(model, modelPath);
        if (problems.Count > 0)
        {
            throw new CompressionException(
                [Diagnostic.Error(DiagnosticCodes.TransformedModelRejected, $"{result.Stage}: the stage's output is not a valid ONNX graph (a bug: please report it).", modelPath), .. problems]);
        }

        if (removed.IsEmpty)
        {
            return result;
        }

        OnnxModelFile.Save(model, modelPath);
        context.Reporter.Info(string.Create(
            CultureInfo.InvariantCulture,
            $"{result.Stage}: removed {removed.Nodes} dead nodes and {removed.Initializers} unread initializers ({removed.InitializerBytes} bytes)"));
        var details = new Dictionary<string, string>(result.Details, StringComparer.Ordinal)
        {
            ["dead_nodes_removed"] = removed.Nodes.ToString(CultureInfo.InvariantCulture),
            ["dead_initializers_removed"] = removed.Initializers.ToString(CultureInfo.InvariantCulture),
            ["dead_initializer_bytes_removed"] = removed.InitializerBytes.ToString(CultureInfo.InvariantCulture),
        };
        return result with { Details = details };
    }
}
