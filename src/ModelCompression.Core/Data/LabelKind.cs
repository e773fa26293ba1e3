namespace ModelCompression.Data;

/// <summary>What the labels of a data set are, as the recipe's task says: it decides how the readers parse them.</summary>
public enum LabelKind
{
    /// <summary>Class numbers (or class names mapped to numbers): <see cref="Dataset.Labels"/>, int64.</summary>
    Classes,

    /// <summary>Real numbers (regression targets): <see cref="Dataset.Targets"/>, float32; NaN and infinities are refused.</summary>
    Values,
}
