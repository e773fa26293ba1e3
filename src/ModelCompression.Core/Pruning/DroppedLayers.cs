namespace ModelCompression.Pruning;

/// <summary>What every depth pruner checks of the layers it is asked to drop, worded alike for encoders and decoders.</summary>
internal static class DroppedLayers
{
    /// <summary>
    /// The problems with dropping <paramref name="drop"/> from a model whose layers are <paramref name="layers"/>:
    /// indices that do not exist, and a drop that leaves no layer (empty when the model has no layers: its pruner says
    /// what it looked for).
    /// </summary>
    public static IEnumerable<string> Problems(IReadOnlyList<int> layers, IReadOnlyCollection<int> drop)
    {
        if (layers.Count == 0)
        {
            yield break;
        }

        var missing = drop.Where(i => !layers.Contains(i)).Distinct().Order().ToList();
        if (missing.Count > 0)
        {
            yield return $"layer(s) {string.Join(", ", missing)} do not exist; the model has layers {string.Join(", ", layers)}";
        }

        if (layers.All(drop.Contains))
        {
            yield return $"dropping layers {string.Join(", ", drop.Distinct().Order())} would leave none of the {layers.Count}";
        }
    }
}
