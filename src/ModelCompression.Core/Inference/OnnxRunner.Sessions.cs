using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Data;
using ModelCompression.Diagnostics;
using ModelCompression.Onnx;
using ModelCompression.Onnx.Proto;
using ModelCompression.Threading;

namespace ModelCompression.Inference;

// How the runner's sessions are made: their options, the checks before a file is opened, what the graph exposes,
// and the probe that proves a provider works. The rest of the runner (feeding, fetching, timing) is in OnnxRunner.cs.
public sealed partial class OnnxRunner
{
    /// <summary>ONNX Runtime's session config key for intra-op pool threads spinning while they wait for work.</summary>
    internal const string AllowSpinningKey = "session.intra_op.allow_spinning";

    /// <summary>
    /// A session on <paramref name="model"/> (serialized), or on <paramref name="file"/> when it is null. A model
    /// from the user's <paramref name="file"/> that ONNX Runtime refuses is MC2002 naming the file; one the engine
    /// built in memory (no file) is an internal error (MC5001) naming <paramref name="name"/>.
    /// </summary>
    private static InferenceSession Open(string name, string? file, byte[]? model, int threads, GraphOptimizationLevel level, string? optimizedModelPath, ExecutionProvider provider = ExecutionProvider.Cpu)
    {
        OnnxRuntimeEnvironment.EnsureTelemetryOff();
        using var options = CreateOptions(threads, level);
        ExecutionProviders.Append(options, provider);
        if (optimizedModelPath is not null)
        {
            options.OptimizedModelFilePath = optimizedModelPath;
        }

        if (model is null)
        {
            // ONNX Runtime reads a file (and its external data, wherever it points) before saying what is wrong
            // with it; the project's own checks come first and never look outside the model's folder.
            OnnxModelFile.Verify([file!]);
        }

        try
        {
            return model is null ? new InferenceSession(file!, options) : new InferenceSession(model, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw file is not null
                ? CompressionException.Error(DiagnosticCodes.ModelInvalid, $"ONNX Runtime cannot load '{file}': {e.Message}", file)
                : CompressionException.Error(DiagnosticCodes.Internal, $"ONNX Runtime cannot load the {name}: {e.Message}");
        }
    }

    /// <summary>
    /// Opens a one-node model (Relu of a float [1]) on <paramref name="provider"/>, with the node required to run there
    /// when that is not the CPU (no fallback to it), and runs it once: what proves a provider works before a run spends time on anything.
    /// ONNX Runtime's refusal is an <see cref="OnnxRuntimeException"/>.
    /// </summary>
    internal static float[] Probe(ExecutionProvider provider, float value)
    {
        var graph = new GraphProto { Name = "provider-check" };
        graph.Input.Add(FloatVector("x"));
        graph.Output.Add(FloatVector("y"));
        graph.Node.Add(new NodeProto { OpType = "Relu", Input = { "x" }, Output = { "y" } });
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = 17 });

        OnnxRuntimeEnvironment.EnsureTelemetryOff();
        using var options = CreateOptions(1, GraphOptimizationLevel.ORT_DISABLE_ALL);
        if (provider != ExecutionProvider.Cpu)
        {
            options.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1");
        }

        ExecutionProviders.Append(options, provider);
        using var session = new InferenceSession(model.ToByteArray(), options);
        using var input = OrtValue.CreateTensorValueFromMemory(new[] { value }, [1]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["x"], [input], ["y"]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();

        static ValueInfoProto FloatVector(string name) => new()
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = new TensorShapeProto { Dim = { new TensorShapeProto.Types.Dimension { DimValue = 1 } } } } },
        };
    }

    /// <summary>
    /// The session options of every runner: sequential execution, <paramref name="threads"/> intra-op threads, or
    /// with 0 the engine's budget (<see cref="EngineThreads.Budget"/>) and no spinning.
    /// </summary>
    internal static SessionOptions CreateOptions(int threads, GraphOptimizationLevel level)
    {
        var options = new SessionOptions
        {
            IntraOpNumThreads = threads > 0 ? threads : EngineThreads.Budget.Threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = level,
        };
        if (threads <= 0)
        {
            // Pool threads that spin between batches burn the time slices a busy machine's other processes (and
            // libtorch's threads in this one) need. Latency measurements pass their own thread count and keep
            // ONNX Runtime's spinning, which is what a served model would do.
            options.AddSessionConfigEntry(AllowSpinningKey, "0");
        }

        return options;
    }

    /// <summary>The model serialized with <paramref name="tensors"/> that are neither graph inputs nor outputs added as outputs.</summary>
    private static byte[] Expose(ModelProto model, IReadOnlyCollection<string> tensors)
    {
        var present = model.Graph.Output.Select(o => o.Name).Concat(model.Graph.Input.Select(i => i.Name)).ToHashSet(StringComparer.Ordinal);
        foreach (var name in tensors.Where(present.Add))
        {
            // No type: ONNX Runtime infers it, which works for any intermediate value.
            model.Graph.Output.Add(new ValueInfoProto { Name = name });
        }

        return model.ToByteArray();
    }

    private static List<ModelInput> Describe(InferenceSession session) =>
    [
        .. session.InputMetadata.Select(p => new ModelInput(
            p.Key,
            p.Value.ElementDataType switch
            {
                TensorElementType.Float => "float32",
                TensorElementType.Int64 => "int64",
                var other => other.ToString().ToLowerInvariant(),
            },
            p.Value.Dimensions,
            p.Value.SymbolicDimensions ?? [])),
    ];
}
