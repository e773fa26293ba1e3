using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Onnx;
using ModelCompression.Text;
using ModelCompression.Torch.Training;
using static ModelCompression.Core.Tests.Generation.ChatTrainSupport;

namespace ModelCompression.Core.Tests.Generation;

/// <summary>
/// Chat records become per-token rows: the template's ids right-padded with the pad id, a mask of the real tokens,
/// labels only on the answers; records whose answer does not fit are dropped and named (MC2070); gold and teacher parts
/// join with their counts kept.
/// </summary>
public sealed class ChatTrainingSetTests
{
    [Fact]
    public void Rows_are_the_templates_ids_right_padded_with_labels_on_the_answer_only()
    {
        var template = Template();
        List<ChatRecord> records = [Record("abc", "cba", 1), Record("hello", "olleh", 2)];

        var set = ChatTrainingSet.Render(records, template);

        // "Q: hello\nA: olleh" + end of text is the longest: 9 + 3 + 5 + 1 tokens.
        Assert.Equal(18, set.SequenceLength);
        Assert.Equal(2, set.Count);
        var first = template.RenderForTraining(records[0].Messages, int.MaxValue);
        var row = set.InputIds[..18].ToArray();
        Assert.Equal(first.Ids.Select(i => (long)i), row[..first.Ids.Length]);
        Assert.All(row[first.Ids.Length..], id => Assert.Equal(256, id));
        Assert.Equal(Enumerable.Repeat(1L, first.Ids.Length).Concat(Enumerable.Repeat(0L, 18 - first.Ids.Length)), set.AttentionMask[..18].ToArray());
        // Labels: the answer's bytes and the end of text, each at the position before it.
        var labelled = set.Labels[..18].ToArray().Where(l => l != TrainingSet.NoLabel).ToArray();
        Assert.Equal(new long[] { 'c', 'b', 'a', 256 }, labelled);
        Assert.Equal(4 + 6, set.TrainedTokens);

        var training = set.ToTrainingSet();
        Assert.Equal(257, training.Classes);
        Assert.Equal(18, training.SequenceLength);
        Assert.Equal(new[] { DecoderConvention.InputIds, DecoderConvention.AttentionMask }, training.Inputs.Select(i => i.Name));
        Assert.Equal(4, training.TrainedTokens(0));
    }

    [Fact]
    public void A_max_length_fixes_L_and_drops_answers_that_do_not_fit_with_MC2070()
    {
        List<ChatRecord> records = [Record("abc", "cba", 1), Record("a", new string('x', 30), 2), Record("abcdefghijklmnop", "p", 3)];

        var set = ChatTrainingSet.Render(records, Template(), maxLength: 16);

        Assert.Equal(16, set.SequenceLength);
        Assert.Equal(2, set.Count);
        var part = Assert.Single(set.Parts);
        Assert.Equal((1, 1, 1), (part.Rendering.Whole, part.Rendering.PromptCut, part.Dropped));
        var warning = Assert.Single(set.Warnings);
        Assert.Equal(DiagnosticCodes.ChatAnswerTooLong, warning.Code);
        Assert.Equal(("chat.jsonl", 2), (warning.File, warning.Line));
        Assert.Contains("max_length 16", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Data_with_nothing_to_train_is_MC2084_with_the_file()
    {
        List<ChatRecord> records = [Record("a", new string('x', 30), 4, "data/train.jsonl"), new([new ChatMessage(ChatRole.User, "only a prompt")], "data/train.jsonl", 5)];

        var error = Assert.Throws<CompressionException>(() => ChatTrainingSet.Render(records, Template(), maxLength: 16));

        Assert.Equal(DiagnosticCodes.ChatNothingToTrain, error.Code);
        Assert.Equal(("data/train.jsonl", 4), (error.Diagnostics[0].File, error.Diagnostics[0].Line));
        Assert.Contains("1 answers are longer than max_length 16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gold_and_teacher_parts_concatenate_with_their_counts()
    {
        var template = Template();
        var gold = ChatTrainingSet.Render([Record("abc", "cba", 1), Record("de", "ed", 2)], template);
        var teacher = ChatTrainingSet.Render([Record("f", "f", 1, "teacher"), Record("abcdef", "fedcba", 2, "teacher"), Record("xy", "yx", 3, "teacher")], template, origin: "teacher");

        var both = gold.Concat(teacher);

        Assert.Equal(5, both.Count);
        Assert.Equal(Math.Max(gold.SequenceLength, teacher.SequenceLength), both.SequenceLength);
        Assert.Equal(new[] { ("gold", 0, 2, 4L + 3), ("teacher", 2, 3, 2L + 7 + 3) }, both.Parts.Select(p => (p.Origin, p.FirstRow, p.Sequences, p.TrainedTokens)));
        Assert.Equal(gold.TrainedTokens + teacher.TrainedTokens, both.TrainedTokens);
        // The gold rows were shorter: padded on to the longer L, labels and mask unchanged.
        var training = both.ToTrainingSet();
        Assert.Equal([4, 3, 2, 7, 3], Enumerable.Range(0, 5).Select(training.TrainedTokens));
        Assert.Equal(gold.InputIds[..gold.SequenceLength].ToArray(), both.InputIds[..gold.SequenceLength].ToArray());
        Assert.All(both.InputIds[gold.SequenceLength..both.SequenceLength].ToArray(), id => Assert.Equal(256, id));
        Assert.NotEqual(gold.ContentHash(), both.ContentHash());

        var markers = new ChatTemplate(new ChatTemplateOptions(), GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Byte, Specials: new ChatTemplateOptions().Markers)));
        Assert.Throws<ArgumentException>(() => gold.Concat(ChatTrainingSet.Render([Record("a", "a", 1)], markers)));
    }
}
