using System.Text.Json;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Evaluation;

namespace ModelCompression.Gates;

/// <summary>
/// The committed reference a build is compared with: the final model's evaluation (metrics and per-sample
/// predictions, for McNemar's paired test) written by <c>dotnet compress baseline accept</c>.
/// </summary>
/// <param name="SchemaVersion">Bumped on any incompatible change.</param>
/// <param name="CreatedUtc">When it was accepted.</param>
/// <param name="DataHash">Hash of the data it was measured on: paired tests need the same held-out samples.</param>
/// <param name="Evaluation">The accepted model's evaluation.</param>
public sealed record BaselineFile(int SchemaVersion, DateTimeOffset CreatedUtc, string DataHash, ModelEvaluation Evaluation)
{
    /// <summary>The schema version this engine writes and reads.</summary>
    public const int CurrentSchemaVersion = 1;

    /// <summary>Reads a baseline; null when the file does not exist.</summary>
    public static BaselineFile? Load(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            var baseline = JsonSerializer.Deserialize<BaselineFile>(File.ReadAllText(path), ModelEvaluation.JsonOptions);
            if (baseline is null || baseline.SchemaVersion != CurrentSchemaVersion || baseline.Evaluation is null)
            {
                throw CompressionException.Error(
                    DiagnosticCodes.BaselineInvalid,
                    $"The baseline file is not a version {CurrentSchemaVersion} baseline; accept a new one with 'dotnet compress baseline accept'.",
                    path);
            }

            return baseline;
        }
        catch (JsonException e)
        {
            throw CompressionException.Error(DiagnosticCodes.BaselineInvalid, $"The baseline file is not valid JSON: {e.Message}", path, (int?)(e.LineNumber + 1));
        }
    }

    /// <summary>Writes the baseline atomically.</summary>
    public void Save(string path) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(this, ModelEvaluation.JsonOptions));
}
