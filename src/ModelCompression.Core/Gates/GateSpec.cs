namespace ModelCompression.Gates;

/// <summary>A gate as written in the recipe, with its line.</summary>
/// <param name="Expression">The parsed expression.</param>
/// <param name="Text">The text as written.</param>
/// <param name="Line">Its line in the recipe.</param>
/// <param name="Column">Its column in the recipe.</param>
/// <param name="Significant">Fail only when the model is worse with 95% confidence (accuracy gates).</param>
public sealed record GateSpec(GateExpression Expression, string Text, int Line, int Column, bool Significant = false);
