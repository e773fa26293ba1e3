using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ModelCompression.Diagnostics;
using ModelCompression.Inference;
using ModelCompression.Onnx;

namespace ModelCompression.Generation;

/// <summary>
/// An ONNX Runtime session on a decoder of the <see cref="DecoderConvention"/>, with the runner's session options and
/// thread budget (<see cref="OnnxRunner"/>): it reads the model's <see cref="DecoderSignature"/> and runs one forward
/// step at a time. The cache stays in ONNX Runtime: a step's present keys and values (<see cref="DecoderStep.Present"/>)
/// are fed back as the next step's past as they are, never copied through managed arrays.
/// </summary>
public sealed class DecoderSession : IDisposable
{
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly string[] _pastNames;
    private readonly string[] _presentNames;

    private DecoderSession(InferenceSession session, string modelPath, DecoderSignature signature)
    {
        _session = session;
        ModelPath = modelPath;
        Signature = signature;
        _pastNames = [.. Enumerable.Range(0, signature.CachedLayers).SelectMany(l => new[] { DecoderConvention.PastKey(l), DecoderConvention.PastValue(l) })];
        _presentNames = [.. Enumerable.Range(0, signature.CachedLayers).SelectMany(l => new[] { DecoderConvention.PresentKey(l), DecoderConvention.PresentValue(l) })];
    }

    /// <summary>The model file, named in every message.</summary>
    public string ModelPath { get; }

    /// <summary>What the model takes and gives.</summary>
    public DecoderSignature Signature { get; }

    /// <summary>
    /// Opens the decoder at <paramref name="modelPath"/>. The file is checked as <see cref="OnnxModelFile.LoadChecked"/>
    /// checks it (MC2001 to MC2005), then its graph against the convention (<see cref="DecoderSignature.Read"/>, MC2080);
    /// one ONNX Runtime still refuses is MC2002. <paramref name="threads"/> 0 uses the engine's thread budget without
    /// spinning, as the runner does; <paramref name="provider"/> is where it runs.
    /// </summary>
    public static DecoderSession Open(string modelPath, int threads = 0, ExecutionProvider provider = ExecutionProvider.Cpu)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        // The graph alone says the signature; the weights stay on disk for ONNX Runtime to read.
        var model = OnnxModelFile.LoadChecked(modelPath, new OnnxLoadOptions { LoadExternalData = false });
        var signature = DecoderSignature.Read(model, modelPath);
        OnnxRuntimeEnvironment.EnsureTelemetryOff();
        using var options = OnnxRunner.CreateOptions(threads, GraphOptimizationLevel.ORT_ENABLE_ALL);
        ExecutionProviders.Append(options, provider);
        try
        {
            return new DecoderSession(new InferenceSession(modelPath, options), modelPath, signature);
        }
        catch (OnnxRuntimeException e)
        {
            throw CompressionException.Error(DiagnosticCodes.ModelInvalid, $"ONNX Runtime cannot load '{modelPath}': {e.Message}", modelPath);
        }
    }

    /// <summary>
    /// Runs one step for <paramref name="batch"/> rows: <paramref name="inputIds"/> [batch, sequence] the new tokens,
    /// <paramref name="attentionMask"/> [batch, past + sequence], <paramref name="positionIds"/> [batch, sequence]
    /// (ignored when the model has none), all row-major. <paramref name="past"/> is the previous step's
    /// <see cref="DecoderStep.Present"/> (null: a past of length 0, as on a first step; always for a model without
    /// cache inputs). With <paramref name="fetchPresent"/> false only the logits are fetched. The result owns ONNX
    /// Runtime's outputs: dispose it once its logits are read and its present has been fed to the next step.
    /// </summary>
    public DecoderStep Run(long[] inputIds, long[] attentionMask, long[] positionIds, int batch, IReadOnlyList<OrtValue>? past = null, bool fetchPresent = true)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentNullException.ThrowIfNull(positionIds);
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        if (inputIds.Length % batch != 0 || attentionMask.Length % batch != 0 || positionIds.Length != inputIds.Length)
        {
            throw new ArgumentException($"input_ids ({inputIds.Length}), attention_mask ({attentionMask.Length}) and position_ids ({positionIds.Length}) do not make {batch} rows.", nameof(inputIds));
        }

        if (past is not null && (!Signature.HasCache || past.Count != _pastNames.Length))
        {
            throw new ArgumentException($"The past has {past.Count} values; '{ModelPath}' takes {_pastNames.Length}.", nameof(past));
        }

        var sequence = inputIds.Length / batch;
        var total = attentionMask.Length / batch;
        var names = new List<string>(3 + _pastNames.Length);
        var values = new List<OrtValue>(3 + _pastNames.Length);
        // Values this step made (the ids, the mask, an empty past) are freed here; a past handed in belongs to its step.
        var owned = new List<OrtValue>(3 + _pastNames.Length);
        try
        {
            Add(DecoderConvention.InputIds, OrtValue.CreateTensorValueFromMemory(inputIds, [batch, sequence]), owns: true);
            Add(DecoderConvention.AttentionMask, OrtValue.CreateTensorValueFromMemory(attentionMask, [batch, total]), owns: true);
            if (Signature.HasPositionIds)
            {
                Add(DecoderConvention.PositionIds, OrtValue.CreateTensorValueFromMemory(positionIds, [batch, sequence]), owns: true);
            }

            for (var i = 0; i < _pastNames.Length; i++)
            {
                if (past is not null)
                {
                    Add(_pastNames[i], past[i], owns: false);
                }
                else
                {
                    Add(_pastNames[i], OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, TensorElementType.Float, [batch, Signature.KeyValueHeads, 0, Signature.HeadWidth]), owns: true);
                }
            }

            var outputs = fetchPresent && Signature.HasCache ? [DecoderConvention.Logits, .. _presentNames] : new[] { DecoderConvention.Logits };
            var results = _session.Run(_runOptions, names, values, outputs);
            return new DecoderStep(results, batch, sequence, fetchPresent && Signature.HasCache);
        }
        catch (OnnxRuntimeException e)
        {
            throw CompressionException.Error(DiagnosticCodes.ModelInvalid, $"ONNX Runtime failed to run the decoder '{ModelPath}' on a batch of {batch} x {sequence} tokens: {e.Message}", ModelPath);
        }
        finally
        {
            owned.ForEach(v => v.Dispose());
        }

        void Add(string name, OrtValue value, bool owns)
        {
            if (owns)
            {
                owned.Add(value);
            }

            names.Add(name);
            values.Add(value);
        }
    }

    /// <summary>
    /// The logits [batch, sequence, vocabulary] (row-major, copied) of one whole-sequence forward pass with an empty
    /// past: what parity checks, perplexity and teacher logits read.
    /// </summary>
    public float[] Forward(long[] inputIds, long[] attentionMask, long[] positionIds, int batch)
    {
        using var step = Run(inputIds, attentionMask, positionIds, batch, past: null, fetchPresent: false);
        return step.Logits.ToArray();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _runOptions.Dispose();
        _session.Dispose();
    }
}

/// <summary>
/// The outputs of one <see cref="DecoderSession.Run"/>: the logits and, when fetched, the present keys and values, all
/// in ONNX Runtime's memory and valid until this is disposed.
/// </summary>
public sealed class DecoderStep : IDisposable
{
    private readonly IDisposableReadOnlyCollection<OrtValue> _results;

    internal DecoderStep(IDisposableReadOnlyCollection<OrtValue> results, int batch, int sequence, bool hasPresent)
    {
        _results = results;
        Batch = batch;
        Sequence = sequence;
        var shape = results[0].GetTensorTypeAndShape().Shape;
        Vocabulary = checked((int)shape[^1]);
        Present = hasPresent ? [.. results.Skip(1)] : [];
    }

    /// <summary>Rows of the step.</summary>
    public int Batch { get; }

    /// <summary>New tokens per row.</summary>
    public int Sequence { get; }

    /// <summary>Width of the logits.</summary>
    public int Vocabulary { get; }

    /// <summary>The logits [batch, sequence, vocabulary], read in place.</summary>
    public ReadOnlySpan<float> Logits => _results[0].GetTensorDataAsSpan<float>();

    /// <summary>The present keys and values in the convention's order (layer 0 key, layer 0 value, layer 1 key, …); empty when not fetched.</summary>
    public IReadOnlyList<OrtValue> Present { get; }

    /// <summary>The logits of <paramref name="row"/>'s last new token.</summary>
    public ReadOnlySpan<float> LastLogits(int row) => Logits.Slice(((row * Sequence) + Sequence - 1) * Vocabulary, Vocabulary);

    /// <inheritdoc />
    public void Dispose() => _results.Dispose();
}
