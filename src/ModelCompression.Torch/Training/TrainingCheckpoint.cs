using System.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ModelCompression.Torch.Training;

/// <summary>The loop's own state between epochs: everything besides tensors that a resumed run needs.</summary>
internal sealed class TrainingState
{
    /// <summary>Epochs finished.</summary>
    public int Epoch { get; set; }

    /// <summary>Optimizer steps taken (drives the learning-rate schedule).</summary>
    public int Step { get; set; }

    /// <summary>Best validation accuracy so far; NaN before the first validation.</summary>
    public double BestMetric { get; set; } = double.NaN;

    /// <summary>The epoch of <see cref="BestMetric"/>.</summary>
    public int BestEpoch { get; set; }

    /// <summary>Epochs since the last improvement (early stopping).</summary>
    public int EpochsWithoutImprovement { get; set; }

    /// <summary>True once early stopping ended the run.</summary>
    public bool Stopped { get; set; }

    public List<double> EpochLosses { get; } = [];

    public List<double> ValidationAccuracies { get; } = [];
}

/// <summary>
/// The end-of-epoch checkpoint: loop state, model parameters and buffers, optimizer state and the best
/// weights so far, in one file written to a temporary name and renamed, so a run killed at any moment leaves
/// either the previous checkpoint or the new one. Shuffling and dropout are seeded from (seed, epoch), so the
/// epoch number is all the random state there is to keep.
/// </summary>
internal static class TrainingCheckpoint
{
    public const string FileName = "checkpoint.bin";

    // Bumped whenever the layout changes: an old file is then ignored, not misread.
    private const string Magic = "ModelCompression.TrainingCheckpoint/2";

    public static void Save(string directory, string fingerprint, TrainingState state, IReadOnlyList<(string Name, Tensor Value)> trained, ParameterOptimizer optimizer, IReadOnlyList<(string Name, Tensor Value)>? best)
    {
        Directory.CreateDirectory(directory);
        var final = Path.Combine(directory, FileName);
        var temporary = Path.Combine(directory, $".{FileName}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            using (var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
            {
                writer.Write(Magic);
                writer.Write(fingerprint);
                writer.Write(state.Epoch);
                writer.Write(state.Step);
                writer.Write(state.BestMetric);
                writer.Write(state.BestEpoch);
                writer.Write(state.EpochsWithoutImprovement);
                writer.Write(state.Stopped);
                WriteDoubles(writer, state.EpochLosses);
                WriteDoubles(writer, state.ValidationAccuracies);
                WriteTensors(writer, trained);
                writer.Write(best is not null);
                if (best is not null)
                {
                    WriteTensors(writer, best);
                }

                writer.Write(optimizer.Steps);
                WriteTensors(writer, optimizer.State());
                writer.Flush();
                // On disk before the rename, so a power cut cannot leave a renamed but empty file.
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, final, overwrite: true);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    /// <summary>
    /// Loads the checkpoint in <paramref name="directory"/> into the trained tensors and the optimizer when it
    /// belongs to the same run (same fingerprint). <paramref name="best"/> receives the best weights, allocated
    /// here in the shapes of <paramref name="bestLayout"/>.
    /// </summary>
    /// <param name="directory">The checkpoint folder.</param>
    /// <param name="fingerprint">The run's fingerprint.</param>
    /// <param name="trained">Everything the run trains (the model's state, and any loss modules').</param>
    /// <param name="bestLayout">The tensors a best-weights snapshot holds (the model's state).</param>
    /// <param name="optimizer">The optimizer, whose state is restored.</param>
    /// <param name="state">The loop's state.</param>
    /// <param name="best">The best weights so far, or null.</param>
    public static bool TryLoad(string directory, string fingerprint, IReadOnlyList<(string Name, Tensor Value)> trained, IReadOnlyList<(string Name, Tensor Value)> bestLayout, ParameterOptimizer optimizer, out TrainingState state, out List<(string Name, Tensor Value)>? best)
    {
        state = new TrainingState();
        best = null;
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return false;
        }

        using var stream = File.OpenRead(path);
        using var reader = new BinaryReader(stream, Encoding.UTF8);
        try
        {
            if (reader.ReadString() != Magic || reader.ReadString() != fingerprint)
            {
                // Another run's checkpoint (other options, data or graph): start over, it is overwritten later.
                return false;
            }
        }
        catch (EndOfStreamException)
        {
            return false;
        }

        state.Epoch = reader.ReadInt32();
        state.Step = reader.ReadInt32();
        state.BestMetric = reader.ReadDouble();
        state.BestEpoch = reader.ReadInt32();
        state.EpochsWithoutImprovement = reader.ReadInt32();
        state.Stopped = reader.ReadBoolean();
        state.EpochLosses.AddRange(ReadDoubles(reader));
        state.ValidationAccuracies.AddRange(ReadDoubles(reader));
        ReadInto(reader, trained);
        if (reader.ReadBoolean())
        {
            best = [.. bestLayout.Select(p => (p.Name, CloneDetached(p.Value)))];
            ReadInto(reader, best);
        }

        optimizer.Steps = reader.ReadInt64();
        ReadInto(reader, optimizer.State());
        return true;
    }

    /// <summary>Parameters and every buffer (persistent or not: imported graphs keep constants as non-persistent buffers).</summary>
    public static List<(string Name, Tensor Value)> ModelState(nn.Module model) =>
    [
        .. model.named_parameters().Select(p => ("param:" + p.name, (Tensor)p.parameter)),
        .. model.named_buffers(recurse: true, include_nonpersistent: true).Select(b => ("buffer:" + b.name, b.buffer)),
    ];

    /// <summary>A copy that no dispose scope owns and that autograd does not track.</summary>
    public static Tensor CloneDetached(Tensor value)
    {
        using var noGrad = torch.no_grad();
        return value.detach().clone().DetachFromDisposeScope();
    }

    private static void WriteDoubles(BinaryWriter writer, List<double> values)
    {
        writer.Write(values.Count);
        foreach (var value in values)
        {
            writer.Write(value);
        }
    }

    private static IEnumerable<double> ReadDoubles(BinaryReader reader)
    {
        var count = reader.ReadInt32();
        var values = new double[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = reader.ReadDouble();
        }

        return values;
    }

    private static void WriteTensors(BinaryWriter writer, IReadOnlyList<(string Name, Tensor Value)> tensors)
    {
        writer.Write(tensors.Count);
        foreach (var (name, value) in tensors)
        {
            using var scope = torch.NewDisposeScope();
            var data = value.detach().cpu().contiguous();
            writer.Write(name);
            writer.Write((int)data.dtype);
            writer.Write(data.shape.Length);
            foreach (var size in data.shape)
            {
                writer.Write(size);
            }

            var bytes = data.bytes;
            writer.Write(bytes.Length);
            writer.Write(bytes);
        }
    }

    private static void ReadInto(BinaryReader reader, IReadOnlyList<(string Name, Tensor Value)> targets)
    {
        var count = reader.ReadInt32();
        if (count != targets.Count)
        {
            throw new InvalidDataException($"The checkpoint holds {count} tensors; the model has {targets.Count}.");
        }

        using var noGrad = torch.no_grad();
        foreach (var (name, target) in targets)
        {
            using var scope = torch.NewDisposeScope();
            var storedName = reader.ReadString();
            var dtype = (ScalarType)reader.ReadInt32();
            var shape = new long[reader.ReadInt32()];
            for (var i = 0; i < shape.Length; i++)
            {
                shape[i] = reader.ReadInt64();
            }

            var bytes = reader.ReadBytes(reader.ReadInt32());
            if (storedName != name || dtype != target.dtype || !shape.SequenceEqual(target.shape))
            {
                throw new InvalidDataException($"Checkpoint tensor {storedName} {dtype}[{string.Join(",", shape)}] does not fit {name} {target.dtype}[{string.Join(",", target.shape)}].");
            }

            var loaded = torch.empty(shape, dtype);
            loaded.bytes = bytes;
            target.copy_(loaded);
        }
    }
}
