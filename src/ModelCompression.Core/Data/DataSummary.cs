using System.Runtime.InteropServices;
using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Data;

namespace ModelCompression.Data;

/// <summary>
/// What a run needs to know of its data when every stage and evaluation is cached, kept in the cache under the data's
/// hash so such a run reads no data file: the training samples' shape, the vocabulary size, the label names, each
/// split's label range (the label check), each int64 tensor's id range (the token check), the model's input contract
/// (<c>.data.json</c>, stored as written) and the test labels (the paired test of a baseline gate). Everything here is
/// a function of the data files and the data options, which the hash covers.
/// </summary>
/// <param name="TrainTensors">The training split's tensor names, in order.</param>
/// <param name="SampleShape">The training split's first tensor's sample shape.</param>
/// <param name="VocabularySize">The ids a token model's embedding table must cover; null for numeric data.</param>
/// <param name="LabelNames">Class names by class number; null when the labels are plain numbers.</param>
/// <param name="Splits">Each split's samples and label range, in <see cref="LoadedData.Splits"/> order.</param>
/// <param name="TokenIds">The smallest and largest value of each int64 tensor over every split, by tensor name.</param>
internal sealed record DataSummary(
    IReadOnlyList<string> TrainTensors,
    long[] SampleShape,
    int? VocabularySize,
    IReadOnlyList<string>? LabelNames,
    IReadOnlyList<SplitSummary> Splits,
    IReadOnlyDictionary<string, IdRange> TokenIds)
{
    private const string DescriptionFile = "data.json";
    private const string TestLabelsFile = "test-labels.bin";

    /// <summary>The folder of the cache entry this summary was read from.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Entry { get; private init; } = "";

    /// <summary>The model's input contract as <see cref="DataDescription.Write"/> writes it.</summary>
    public string DescriptionJson() => File.ReadAllText(Path.Combine(Entry, DescriptionFile));

    /// <summary>The test split's labels.</summary>
    public long[] TestLabels() => MemoryMarshal.Cast<byte, long>(File.ReadAllBytes(Path.Combine(Entry, TestLabelsFile))).ToArray();

    /// <summary>
    /// The summary of the data whose hash is <paramref name="dataHash"/>, from <paramref name="cache"/>; on a miss
    /// <paramref name="data"/> reads the data (which checks it) and the summary is stored.
    /// </summary>
    public static DataSummary Of(ArtifactCache cache, string dataHash, Func<LoadedData> data)
    {
        var key = new ContentHash().Add("engine", EngineInfo.Version).Add("data", dataHash).Finish();
        var entry = cache.TryGet("data-summary", key) ?? cache.Put("data-summary", key, folder => Summarize(data(), folder));
        return ArtifactCache.ReadResult<DataSummary>(entry) with { Entry = entry };
    }

    private static DataSummary Summarize(LoadedData data, string folder)
    {
        File.WriteAllText(Path.Combine(folder, DescriptionFile), data.Description.ToJsonText(data.Train));
        File.WriteAllBytes(Path.Combine(folder, TestLabelsFile), MemoryMarshal.AsBytes(data.Test.Labels.AsSpan()).ToArray());
        var splits = data.Splits()
            .Select(s => new SplitSummary(s.Name, s.Data.Count, s.Data.Labels is { Length: > 0 } l ? l.Min() : null, s.Data.Labels is { Length: > 0 } m ? m.Max() : null))
            .ToList();
        return new DataSummary([.. data.Train.Tensors.Select(t => t.Name)], data.Train.SampleShape, data.Description.VocabularySize, data.Description.LabelNames, splits, TokenRange.IdRanges(data));
    }
}

/// <summary>One split of a <see cref="DataSummary"/>.</summary>
/// <param name="Name">"train", "test", "validation" or "unlabelled".</param>
/// <param name="Count">Samples.</param>
/// <param name="MinLabel">The smallest label; null when the split has no labels.</param>
/// <param name="MaxLabel">The largest label; null when the split has no labels.</param>
internal sealed record SplitSummary(string Name, int Count, long? MinLabel, long? MaxLabel);
