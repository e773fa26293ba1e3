using System.Runtime.CompilerServices;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Text;
using ModelCompression.Torch.Training;

namespace ModelCompression.Generation;

/// <summary>
/// A local ONNX teacher's token distributions over a <see cref="ChatTrainingSet"/>, for token-level distillation: the
/// teacher decoder runs over the training sequences once (batched, in ONNX Runtime) and a <see cref="TeacherTokenStore"/>
/// keeps its log-probabilities at the trained positions only (full fp16, or the top k of each), row for row; training
/// reads them back every epoch. Only a teacher whose tokenizer is the student's can do this (<see cref="CheckSameTokenizer"/>).
/// </summary>
public static class TeacherTokenCache
{
    /// <summary>
    /// The store's cache key: a <see cref="ContentHash"/> over the teacher model's hash, the data's
    /// (<see cref="ChatTrainingSet.ContentHash"/>), the tokenizer's saved description, the chat template, the form and
    /// k. Any change in them makes another store; the same inputs find the stored one.
    /// </summary>
    public static string Key(string teacherModelHash, string dataHash, GenerationTokenizer tokenizer, ChatTemplateOptions template, TeacherTokenForm form, int k)
    {
        ArgumentNullException.ThrowIfNull(teacherModelHash);
        ArgumentNullException.ThrowIfNull(dataHash);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(template);
        return new ContentHash()
            .Add("kind", "teacher tokens v1")
            .Add("teacher", teacherModelHash)
            .Add("data", dataHash)
            .Add("tokenizer", Description(tokenizer))
            .Add("template", TemplateText(template))
            .Add("form", form.ToString())
            .Add("k", form == TeacherTokenForm.TopK ? k.ToString(System.Globalization.CultureInfo.InvariantCulture) : "0")
            .Finish();
    }

    /// <summary>
    /// The tokenizer's saved description (<see cref="GenerationTokenizer.Save"/>: kind, encoding, characters, specials,
    /// compact ids), plus the SentencePiece model's bytes when it has one: two tokenizers with one description give every
    /// text the same ids. A tokenizer does not change once made, so its description is written once and remembered:
    /// cache keys of every stage and evaluation of a run ask for it.
    /// </summary>
    public static string Description(GenerationTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return Descriptions.GetValue(tokenizer, Describe);
    }

    private static readonly ConditionalWeakTable<GenerationTokenizer, string> Descriptions = new();

    private static string Describe(GenerationTokenizer tokenizer)
    {
        var folder = Path.Join(Path.GetTempPath(), $"mc-tokenizer-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        try
        {
            var path = Path.Join(folder, GenerationTokenizer.DefaultFileName);
            tokenizer.Save(path);
            var text = File.ReadAllText(path);
            foreach (var other in Directory.GetFiles(folder).Where(f => f != path).Order(StringComparer.Ordinal))
            {
                // A SentencePiece model is copied beside the description: its contents, not its name, say the ids.
                text += "\n" + Path.GetFileName(other) + " " + new ContentHash().AddFile("model", other).Finish();
            }

            return text;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// MC2083 (naming the teacher) when the teacher's tokenizer is not the student's: its distributions are over other
    /// ids, so token-level distillation cannot apply; sequence-level distillation (training on its answers) still does.
    /// </summary>
    public static void CheckSameTokenizer(GenerationTokenizer teacher, GenerationTokenizer student, string teacherPath)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(student);
        if (!string.Equals(Description(teacher), Description(student), StringComparison.Ordinal))
        {
            throw CompressionException.Error(
                DiagnosticCodes.TeacherTokenizerMismatch,
                $"The teacher '{teacherPath}' has another tokenizer than the student ({teacher.Kind}, {teacher.VocabularySize} ids; the student's {student.Kind}, {student.VocabularySize} ids): token-level distillation needs one vocabulary, so only sequence-level distillation (training on the teacher's answers) applies. Set kd_ratio to 0 or give the student the teacher's tokenizer.",
                teacherPath);
        }
    }

    /// <summary>
    /// Runs <paramref name="teacher"/> over the rows of <paramref name="data"/>, <paramref name="batchSize"/> at a time,
    /// and writes the store to <paramref name="path"/> (atomically): the log-softmax of its logits at every trained
    /// position, all of it in fp16 (<see cref="TeacherTokenForm.Full"/>) or the top <paramref name="k"/>. Each batch runs
    /// up to its last trained position, with position ids cumsum(mask) - 1 as the trainer makes them. MC2085 when the
    /// teacher's logits are not as wide as the data's vocabulary, MC2086 when its position table is shorter than the sequences. The caller opens the store
    /// (<see cref="TeacherTokenStore.Open"/>) and hands <see cref="TeacherTokens.Of"/> of it to training.
    /// </summary>
    public static void Write(DecoderSession teacher, ChatTrainingSet data, string path, TeacherTokenForm form, int k = 0, int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        if (teacher.Signature.Vocabulary is { } fixedWidth && fixedWidth != data.Vocabulary)
        {
            throw VocabularyMismatch(teacher.ModelPath, fixedWidth, data.Vocabulary);
        }

        DecoderFinetune.CheckLength(teacher.Signature, teacher.ModelPath, data);
        var length = data.SequenceLength;
        using var writer = TeacherTokenWriter.Create(path, form, data.Vocabulary, form == TeacherTokenForm.TopK ? k : 0);
        var ids = data.InputIds.ToArray();
        var mask = data.AttentionMask.ToArray();
        var labels = data.Labels.ToArray();
        for (var start = 0; start < data.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rows = Math.Min(batchSize, data.Count - start);
            var width = 1;
            for (var row = start; row < start + rows; row++)
            {
                width = Math.Max(width, LabelledLength(labels.AsSpan(row * length, length)));
            }

            var (batchIds, batchMask, positions) = (new long[rows * width], new long[rows * width], new long[rows * width]);
            for (var i = 0; i < rows; i++)
            {
                var source = (start + i) * length;
                ids.AsSpan(source, width).CopyTo(batchIds.AsSpan(i * width));
                mask.AsSpan(source, width).CopyTo(batchMask.AsSpan(i * width));
                for (long t = 0, seen = 0; t < width; t++)
                {
                    seen += batchMask[(i * width) + t];
                    positions[(i * width) + t] = Math.Max(0, seen - 1);
                }
            }

            var logits = teacher.Forward(batchIds, batchMask, positions, rows);
            if (logits.Length != (long)rows * width * data.Vocabulary)
            {
                throw VocabularyMismatch(teacher.ModelPath, logits.Length / (rows * width), data.Vocabulary);
            }

            for (var i = 0; i < rows; i++)
            {
                var span = logits.AsSpan(i * width * data.Vocabulary, width * data.Vocabulary);
                writer.AppendLogits(span, labels.AsSpan(((start + i) * length), width));
            }
        }

        writer.Complete();
    }

    private static int LabelledLength(ReadOnlySpan<long> labels)
    {
        for (var t = labels.Length - 1; t >= 0; t--)
        {
            if (labels[t] != TrainingSet.NoLabel)
            {
                return t + 1;
            }
        }

        return 1;
    }

    private static CompressionException VocabularyMismatch(string teacherPath, long width, int vocabulary) =>
        CompressionException.Error(
            DiagnosticCodes.DecoderVocabularyMismatch,
            $"The teacher '{teacherPath}' has logits over {width} tokens but the tokenizer has {vocabulary}: its distributions are not over the student's ids.",
            teacherPath);

    private static string TemplateText(ChatTemplateOptions template) =>
        string.Join("\u0001", [template.System, template.User, template.Assistant, template.GenerationPrompt, .. template.Markers]);
}
