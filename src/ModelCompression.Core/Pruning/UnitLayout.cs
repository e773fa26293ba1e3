namespace ModelCompression.Pruning;

/// <summary>Where the units sit in a value: the channel axis 1 of a rank-<c>Rank</c> image tensor, or the last axis (features).</summary>
internal sealed record UnitLayout(bool Spatial, int Rank, bool Flattened, int Block);
