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
    public static readonly string[] MetadataNames = ["GateFailuresAsWarnings", "CacheDirectory", "Threads", "PublishReports", "RemoteCache", "RemoteCacheMode", "RemoteCacheCredentialEnv"];

    /// <summary>The remote cache settings passed to the engine (metadata <c>RemoteCache</c>, <c>RemoteCacheMode</c>, <c>RemoteCacheCredentialEnv</c>); empty parts are the recipe's.</summary>
    public RemoteCacheSettings Remote { get; init; } = RemoteCacheSettings.None;

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
        var remote = RemoteCacheSettings.Read(
            item.GetMetadata("RemoteCache") is { Length: > 0 } location ? location : null,
            item.GetMetadata("RemoteCacheMode") is { Length: > 0 } mode ? mode : null,
            item.GetMetadata("RemoteCacheCredentialEnv") is { Length: > 0 } variable ? variable : null,
            projectDirectory,
            $"<CompressModel Include=\"{item.ItemSpec}\"> metadata RemoteCache",
            projectFile,
            log);
        valid &= remote is not null;
        return valid ? new RecipeSettings(gates, cache, threads, reports) { Remote = (remote ?? RemoteCacheSettings.None).Over(defaults.Remote) } : null;

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

/// <summary>
/// The remote cache as a project sets it (the <c>CompressModelRemoteCache*</c> properties or an item's metadata), passed to
/// the engine as <c>--remote-cache</c>, <c>--remote-cache-mode</c> and <c>--remote-cache-credential-env</c>. A null part
/// is left to the next source (the item's to the project's, the project's to the recipe's). The engine checks the
/// location; the task checks what it can without it: the mode and the variable's name.
/// </summary>
/// <param name="Location">A folder made absolute against the project, or a URL as written; null for none.</param>
/// <param name="Mode">read, read-write or off; null for none.</param>
/// <param name="CredentialVariable">The variable's name; null for none.</param>
internal sealed record RemoteCacheSettings(string? Location, string? Mode, string? CredentialVariable)
{
    /// <summary>Nothing set.</summary>
    public static RemoteCacheSettings None { get; } = new(null, null, null);

    /// <summary>This, with what it leaves unset taken from <paramref name="fallback"/>.</summary>
    public RemoteCacheSettings Over(RemoteCacheSettings fallback) =>
        new(Location ?? fallback.Location, Mode ?? fallback.Mode, CredentialVariable ?? fallback.CredentialVariable);

    /// <summary>
    /// The settings given by <paramref name="location"/>, <paramref name="mode"/> and <paramref name="variable"/> (blank
    /// for unset), or null after logging an MC4007 error (at <paramref name="projectFile"/>, naming <paramref name="setBy"/>)
    /// for a mode or variable name that cannot be used.
    /// </summary>
    public static RemoteCacheSettings? Read(string? location, string? mode, string? variable, string projectDirectory, string setBy, string projectFile, TaskLoggingHelper log)
    {
        var valid = true;
        var trimmedMode = string.IsNullOrWhiteSpace(mode) ? null : mode!.Trim().ToLowerInvariant();
        if (trimmedMode is not null and not ("read" or "read-write" or "off"))
        {
            log.LogError(null, DiagnosticCodes.InvalidItemMetadata, null, projectFile, 0, 0, 0, 0, "{0}Mode is \"{1}\": it must be read, read-write or off.", setBy, mode);
            valid = false;
        }

        var trimmedVariable = string.IsNullOrWhiteSpace(variable) ? null : variable!.Trim();
        if (trimmedVariable is not null && !System.Text.RegularExpressions.Regex.IsMatch(trimmedVariable, "^[A-Za-z_][A-Za-z0-9_]*$"))
        {
            // Never echo it: a credential pasted where its variable's name belongs must not reach the build log.
            log.LogError(null, DiagnosticCodes.InvalidItemMetadata, null, projectFile, 0, 0, 0, 0, "{0}CredentialEnv must be the name of an environment variable (letters, digits and '_'); what is set there is not one, and is not shown in case it is a credential.", setBy);
            valid = false;
        }

        var trimmedLocation = string.IsNullOrWhiteSpace(location) ? null : location!.Trim();
        var isUrl = trimmedLocation is not null && (trimmedLocation.Contains("://", StringComparison.Ordinal));
        var absolute = trimmedLocation is null || isUrl ? trimmedLocation : Path.GetFullPath(trimmedLocation, projectDirectory);
        return valid ? new RemoteCacheSettings(absolute, trimmedMode, trimmedVariable) : null;
    }
}
