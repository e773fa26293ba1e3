
namespace ModelCompression.Data;

/// <summary>
/// Text samples as token tensors: ids truncated and padded to the recipe's length with an attention mask, the
/// compact vocabulary of the training split, and the ids remapped to it.
/// </summary>
internal static class TextEncoding
{
    /// <summary>
    /// Token ids (tokenizer ids, truncated, padded with the tokenizer's pad id) and the attention mask; with
    /// <paramref name="keepTexts"/> the raw texts stay with the samples' origin (what an endpoint teacher is asked about).
    /// </summary>
    public static Dataset Tokenize(JsonlReader.Texts read, string path, TextTokenizer tokenizer, TextSpec spec, bool keepTexts = false)
    {
        var length = spec.MaxLength;
        var ids = new long[(long)read.Values.Length * length];
        var mask = new long[ids.Length];
        for (var i = 0; i < read.Values.Length; i++)
        {
            var encoded = tokenizer.Encode(read.Values[i], length);
            var row = ids.AsSpan(i * length, length);
            row.Fill(tokenizer.PadId);
            for (var j = 0; j < encoded.Count; j++)
            {
                row[j] = encoded[j];
                mask[(i * length) + j] = 1;
            }
        }

        return new Dataset(
            [DataTensor.FromInt64(spec.IdsName, ids, [length]), DataTensor.FromInt64(MaskTensor(spec), mask, [length])],
            null,
            path,
            DataDescription.Empty,
            new DataOrigin(path, read.Lines, keepTexts ? read.Values : null),
            null,
            null,
            []);
    }

    /// <summary>The mask is always made (it tells padding when remapping ids) and dropped at the end when the spec has no mask.</summary>
    private static string MaskTensor(TextSpec spec) => spec.MaskName ?? "attention_mask";

    /// <summary>The tokenizer ids of the training split's real tokens (padding excluded), as a compact vocabulary.</summary>
    public static CompactVocabulary BuildVocabulary(Dataset train, TextSpec spec)
    {
        var (ids, mask) = TokenArrays(train, spec);
        var length = spec.MaxLength;
        var sequences = Enumerable.Range(0, train.Count).Select(row =>
            (IReadOnlyList<int>)[.. Enumerable.Range(row * length, length).Where(i => mask[i] != 0).Select(i => (int)ids[i])]);
        return CompactVocabulary.Build(sequences);
    }

    /// <summary>Remaps ids to the compact vocabulary (when there is one) and drops the mask when none is wanted.</summary>
    public static Dataset FinishText(Dataset data, CompactVocabulary? vocabulary, TextSpec spec, DataDescription description)
    {
        var (ids, mask) = TokenArrays(data, spec);
        if (vocabulary is not null)
        {
            for (var i = 0; i < ids.Length; i++)
            {
                ids[i] = mask[i] == 0 ? CompactVocabulary.PadId : vocabulary.Map((int)ids[i]);
            }
        }

        long[] shape = [spec.MaxLength];
        var idsTensor = DataTensor.FromInt64(spec.IdsName, ids, shape);
        var maskTensor = DataTensor.FromInt64(MaskTensor(spec), mask, shape);
        return data.MapTensors(t => t.Name == spec.IdsName ? idsTensor : maskTensor, description).KeepTensors(spec.MaskName is null ? [spec.IdsName] : [spec.IdsName, spec.MaskName]);
    }

    private static (long[] Ids, long[] Mask) TokenArrays(Dataset data, TextSpec spec)
    {
        var ids = new long[(long)data.Count * spec.MaxLength];
        var mask = new long[ids.Length];
        data.Tensor(spec.IdsName)!.CopyRange(0, data.Count, ids);
        data.Tensor(MaskTensor(spec))!.CopyRange(0, data.Count, mask);
        return (ids, mask);
    }
}
