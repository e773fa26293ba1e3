using ModelCompression.Generation;
using ModelCompression.Text;
using ModelCompression.Torch.Training;

namespace ModelCompression.Teachers;

/// <summary>How much of a training set an endpoint teacher's tokens cover (<see cref="EndpointTeacherTokens.Write"/>).</summary>
/// <param name="Turns">The teacher's answered turns in the training rows.</param>
/// <param name="AlignedTurns">Those whose tokens are the student's, one for one, and were found in their row.</param>
/// <param name="LabelledTokens">Every trained position of the set (gold and teacher rows).</param>
/// <param name="TeacherTokens">The trained positions that learn the teacher's distribution; the others learn their label.</param>
/// <param name="UnmappedAlternatives">Top alternatives left out because the student has no token of their bytes.</param>
public sealed record EndpointTokenCoverage(int Turns, int AlignedTurns, long LabelledTokens, long TeacherTokens, long UnmappedAlternatives);

/// <summary>
/// An endpoint teacher's token distributions over a <see cref="ChatTrainingSet"/>, for token-level distillation from the
/// top_logprobs the generate stage kept (<see cref="EndpointAnswerTokens"/>): the same top-k <see cref="TeacherTokenStore"/>
/// a local teacher's run writes (<see cref="TeacherTokenCache.Write"/>), row for row. At an answer token whose turn is
/// aligned (<see cref="EndpointTokenAlignment.Align"/>) the entries are the chosen token and the alternatives the
/// endpoint gave; everywhere else (gold rows, the template's end of an answer, turns that do not align) the one entry is
/// the label itself, so those positions learn their label in the distillation term as in the cross-entropy term.
/// </summary>
public static class EndpointTeacherTokens
{
    /// <summary>
    /// Writes the store for <paramref name="train"/> to <paramref name="path"/> (atomically): k entries per trained
    /// position. <paramref name="answers"/> are the teacher's kept answers the set's "teacher" part was rendered from, and
    /// <paramref name="tokens"/> their turns' tokens, in the same order.
    /// </summary>
    public static EndpointTokenCoverage Write(
        ChatTrainingSet train,
        IReadOnlyList<ChatRecord> answers,
        IReadOnlyList<IReadOnlyList<EndpointTurnTokens>> tokens,
        EndpointTokenAlignment alignment,
        string path,
        int k,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(answers);
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(alignment);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        if (answers.Count != tokens.Count)
        {
            throw new ArgumentException($"{answers.Count} answers and {tokens.Count} answers' tokens do not go together.", nameof(tokens));
        }

        var turnsOf = new Dictionary<ChatRecord, IReadOnlyList<EndpointTurnTokens>>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < answers.Count; i++)
        {
            turnsOf[answers[i]] = tokens[i];
        }

        var recordOf = new ChatRecord?[train.Count];
        foreach (var part in train.Parts)
        {
            for (var i = 0; i < part.Sequences; i++)
            {
                recordOf[part.FirstRow + i] = part.Rendering.Records[i];
            }
        }

        int turns = 0, aligned = 0;
        long labelled = 0, fromTeacher = 0, unmapped = 0;
        var length = train.SequenceLength;
        var labels = train.Labels.ToArray();
        using var writer = TeacherTokenWriter.Create(path, TeacherTokenForm.TopK, train.Vocabulary, k);
        for (var row = 0; row < train.Count; row++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var rowLabels = labels.AsSpan(row * length, length).ToArray().Where(l => l != TrainingSet.NoLabel).Select(l => (int)l).ToArray();
            var ids = new int[rowLabels.Length * k];
            var values = new float[rowLabels.Length * k];
            for (var t = 0; t < rowLabels.Length; t++)
            {
                // The label alone: one entry with all the probability, the rest padding with none.
                ids.AsSpan(t * k, k).Fill(rowLabels[t]);
                values.AsSpan(t * k, k).Fill(float.NegativeInfinity);
                values[t * k] = 0;
            }

            if (recordOf[row] is { } record && turnsOf.TryGetValue(record, out var rowTurns))
            {
                var cursor = 0;
                foreach (var turn in rowTurns)
                {
                    turns++;
                    if (turn.Message >= record.Messages.Count || alignment.Align(turn.Tokens, record.Messages[turn.Message].Content) is not { } answer
                        || IndexOf(rowLabels, answer.Ids, cursor) is not (>= 0 and var at))
                    {
                        continue;
                    }

                    aligned++;
                    for (var i = 0; i < answer.Ids.Count; i++)
                    {
                        unmapped += alignment.FillRow(answer.Tokens[i], answer.Ids[i], ids.AsSpan((at + i) * k, k), values.AsSpan((at + i) * k, k));
                    }

                    fromTeacher += answer.Ids.Count;
                    cursor = at + answer.Ids.Count;
                }
            }

            labelled += rowLabels.Length;
            writer.AppendTopK(ids, values);
        }

        writer.Complete();
        return new EndpointTokenCoverage(turns, aligned, labelled, fromTeacher, unmapped);
    }

    /// <summary>Where <paramref name="run"/> first occurs in <paramref name="labels"/> at or after <paramref name="from"/>; -1 when it does not.</summary>
    private static int IndexOf(int[] labels, IReadOnlyList<int> run, int from)
    {
        var found = labels.AsSpan(from).IndexOf([.. run]);
        return found < 0 ? -1 : from + found;
    }
}
