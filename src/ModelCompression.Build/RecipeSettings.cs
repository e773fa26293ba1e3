using System.Globalization;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
using ModelCompression.Diagnostics;

namespace ModelCompression.Build;

/// <summary>
/// One recipe's build settings: a <c>CompressModel</c> item's metadata where set, the project's
/// <c>CompressModel*</c> property otherwise (as Grpc.Tools does for <c>Protobuf</c> items).
/// </summary>
/// <param name="GateFailuresAsWarnings">Broken gates are warnings (metadata <c>GateFailuresAsWarnings</c>).</param>
/// <param name="CacheDirectory">The stage cache, full path (metadata <c>CacheDirectory</c>, relative to the project).</param>
/// <param name="Threads">Threads for libtorch and ONNX Runtime; 0 for the engine's choice (metadata <c>Threads</c>).</param>
/// <param name="PublishReports">Whether the reports go to the output and publish folders with the model (metadata <c>PublishReports</c>).</param>
internal sealed record RecipeSettings(bool GateFailuresAsWarnings, string CacheDirectory, int Threads, bool PublishReports)
{
    /// <summary>The most threads a recipe may ask for (the engine's own limit).</summary>
    public const int MaxThreads = 1024;

    /// <summary>The metadata names, as a project writes them.</summary>
    public static readonly string[] MetadataNames = ["GateFailuresAsWarnings", "CacheDirectory", "Threads", "PublishReports"];

    /// <summary>
    /// The settings of <paramref name="item"/> over <paramref name="defaults"/>, or null after logging an MC4007 error
    /// (file: <paramref name="projectFile"/>) for each invalid metadata value.
    /// </summary>
    public static RecipeSettings? Read(ITaskItem item, RecipeSettings defaults, string projectDirectory, string projectFile, TaskLoggingHelper log)
    {
        var valid = true;
        var gates = Bool("GateFailuresAsWarnings", defaults.GateFailuresAsWarnings);
        var reports = Bool("PublishReports", defaults.PublishReports);
        var threads = defaults.Threads;
        if (item.GetMetadata("Threads") is { Length: > 0 } threadsText)
        {
            if (int.TryParse(threadsText, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value <= MaxThreads)
            {
                threads = value;
            }
            else
            {
                Invalid("Threads", threadsText, $"a whole number from 0 (the CPUs the build may use) to {MaxThreads}");
            }
        }

        var cache = item.GetMetadata("CacheDirectory") is { Length: > 0 } cacheText
            ? Path.GetFullPath(cacheText, projectDirectory)
            : defaults.CacheDirectory;
        return valid ? new RecipeSettings(gates, cache, threads, reports) : null;

        bool Bool(string name, bool fallback)
        {
            var text = item.GetMetadata(name);
            if (text.Length == 0)
            {
                return fallback;
            }

            // MSBuild's own spellings of a boolean.
            switch (text.Trim().ToLowerInvariant())
            {
                case "true" or "yes" or "on":
                    return true;
                case "false" or "no" or "off":
                    return false;
                default:
                    Invalid(name, text, "true or false");
                    return fallback;
            }
        }

        void Invalid(string name, string value, string expected)
        {
            log.LogError(null, DiagnosticCodes.InvalidItemMetadata, null, projectFile, 0, 0, 0, 0, "<CompressModel Include=\"{0}\"> has {1}=\"{2}\": it must be {3}.", item.ItemSpec, name, value, expected);
            valid = false;
        }
    }

    /// <summary>What the state folder's settings file holds: the settings the outputs depend on (threads, cache and publishing do not change them).</summary>
    public string StateText => $"gate-failures-as-warnings={GateFailuresAsWarnings.ToString().ToLowerInvariant()}\n";
}
