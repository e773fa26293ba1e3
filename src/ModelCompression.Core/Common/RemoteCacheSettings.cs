using System.Text.RegularExpressions;
using Azure;
using Azure.Storage.Blobs;
using ModelCompression.Diagnostics;

namespace ModelCompression.Common;

/// <summary>What a run may do with the remote cache.</summary>
public enum RemoteCacheMode
{
    /// <summary>No remote cache.</summary>
    Off,

    /// <summary>Take entries from it, never write to it (pull-request builds: a fork cannot poison the cache).</summary>
    Read,

    /// <summary>Take entries from it and upload what this run builds (trusted builds).</summary>
    ReadWrite,
}

/// <summary>The remote cache as a recipe, a command line or a project asks for it; each part may be left to another.</summary>
/// <param name="Location">
/// A shared folder (a path, or a file:// URL), <c>azure://container/prefix</c> (the credential variable holds a
/// connection string), or a container URL <c>https://account.blob.core.windows.net/container/prefix</c> (the variable
/// holds a SAS token, or is unset for a public container); null to leave it to another source.
/// </param>
/// <param name="Mode">Read or read-write (or off); null to leave it to another source.</param>
/// <param name="CredentialVariable">The environment variable holding the credential; null to leave it to another source.</param>
public sealed record RemoteCacheOptions(string? Location, RemoteCacheMode? Mode, string? CredentialVariable)
{
    /// <summary>The mode names as recipes, command lines and projects write them, in <see cref="RemoteCacheMode"/>'s order after off.</summary>
    public static IReadOnlyList<string> ModeNames { get; } = ["read", "read-write", "off"];

    /// <summary>The variable the credential is read from when none is named.</summary>
    public const string DefaultCredentialVariable = "MODELCOMPRESSION_REMOTE_CACHE_CREDENTIAL";

    /// <summary>The mode a remote cache has when nobody says: read, so that only a build that asks for it writes.</summary>
    public const RemoteCacheMode DefaultMode = RemoteCacheMode.Read;

    /// <summary>The mode named <paramref name="text"/> (case and blanks ignored), or false.</summary>
    public static bool TryParseMode(string? text, out RemoteCacheMode mode)
    {
        (var known, mode) = text?.Trim().ToLowerInvariant() switch
        {
            "read" => (true, RemoteCacheMode.Read),
            "read-write" => (true, RemoteCacheMode.ReadWrite),
            "off" => (true, RemoteCacheMode.Off),
            _ => (false, RemoteCacheMode.Off),
        };
        return known;
    }

    /// <summary>How recipes and messages write <paramref name="mode"/>.</summary>
    public static string ModeName(RemoteCacheMode mode) => mode switch
    {
        RemoteCacheMode.Read => "read",
        RemoteCacheMode.ReadWrite => "read-write",
        _ => "off",
    };

    /// <summary>
    /// What is wrong with <paramref name="location"/> as a remote cache location, or null. Checked where the location is
    /// written (the recipe's line, the command line, the project), before anything runs.
    /// </summary>
    public static string? LocationProblem(string location)
    {
        if (string.IsNullOrWhiteSpace(location))
        {
            return "the remote cache location is empty";
        }

        if (location.StartsWith(RemoteCacheSettings.AzureScheme, StringComparison.OrdinalIgnoreCase))
        {
            var (container, prefix) = RemoteCacheSettings.SplitContainer(location[RemoteCacheSettings.AzureScheme.Length..]);
            return ContainerProblem(container) ?? PrefixProblem(prefix);
        }

        if (!location.StartsWith("http://", StringComparison.OrdinalIgnoreCase) && !location.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            return null; // a folder
        }

        if (!Uri.TryCreate(location, UriKind.Absolute, out var uri))
        {
            return $"'{location}' is not a URL";
        }

        if (uri.Query.Length > 0 || uri.UserInfo.Length > 0)
        {
            return "a container URL holds no query or user name: a SAS token goes in the credential variable, never where recipes, logs and reports show it";
        }

        var parts = new BlobUriBuilder(uri);
        return ContainerProblem(parts.BlobContainerName) ?? PrefixProblem(parts.BlobName);
    }

    /// <summary>
    /// The settings a run uses: <paramref name="command"/>'s parts over <paramref name="recipe"/>'s, the defaults under
    /// both; null when neither names a location or the mode is off.
    /// </summary>
    public static RemoteCacheSettings? Resolve(RemoteCacheOptions? recipe, RemoteCacheOptions? command)
    {
        var location = command?.Location ?? recipe?.Location;
        var mode = command?.Mode ?? recipe?.Mode ?? DefaultMode;
        return location is null || mode == RemoteCacheMode.Off
            ? null
            : new RemoteCacheSettings(location, mode, command?.CredentialVariable ?? recipe?.CredentialVariable ?? DefaultCredentialVariable);
    }

    /// <summary><paramref name="location"/> with a folder made absolute against <paramref name="baseDirectory"/>; URLs as they are.</summary>
    public static string Absolute(string location, string baseDirectory) =>
        RemoteCacheSettings.IsUrl(location) ? location
        : location.StartsWith("file://", StringComparison.OrdinalIgnoreCase) && Uri.TryCreate(location, UriKind.Absolute, out var file) ? file.LocalPath
        : Path.GetFullPath(location, baseDirectory);

    // Azure's rules: 3-63 lowercase letters, digits and single hyphens, starting with a letter or digit.
    private static string? ContainerProblem(string? container) =>
        container is { Length: >= 3 and <= 63 } && Regex.IsMatch(container, "^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$", RegexOptions.CultureInvariant)
            ? null
            : $"'{container}' is not a blob container name (3 to 63 lowercase letters, digits and single hyphens)";

    private static string? PrefixProblem(string? prefix) =>
        string.IsNullOrEmpty(prefix) || Regex.IsMatch(prefix, "^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?$", RegexOptions.CultureInvariant)
            ? null
            : $"'{prefix}' is not a blob prefix (folders of letters, digits, '.', '_' and '-', separated by '/')";
}

/// <summary>A run's remote cache: where it is, what the run may do with it, and which variable holds its credential.</summary>
/// <param name="Location">As <see cref="RemoteCacheOptions.Location"/>; a folder is absolute.</param>
/// <param name="Mode">Read or read-write.</param>
/// <param name="CredentialVariable">The environment variable holding the credential.</param>
public sealed record RemoteCacheSettings(string Location, RemoteCacheMode Mode, string CredentialVariable)
{
    /// <summary>The scheme of a container named with a connection string.</summary>
    public const string AzureScheme = "azure://";

    /// <summary>Whether <paramref name="location"/> names blob storage rather than a folder.</summary>
    public static bool IsUrl(string location) =>
        location.StartsWith(AzureScheme, StringComparison.OrdinalIgnoreCase)
        || location.StartsWith("http://", StringComparison.OrdinalIgnoreCase)
        || location.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The store these settings name, or null after a warning (through <paramref name="reporter"/>) when its credential
    /// is missing or malformed: a run then goes on with its local cache. The credential's value goes into the client and
    /// nowhere else: the messages name the variable, never what it holds.
    /// </summary>
    public ICacheStore? Open(IPipelineReporter reporter, out SecretRedactor redactor)
    {
        ArgumentNullException.ThrowIfNull(reporter);
        redactor = SecretRedactor.None;
        if (!IsUrl(Location))
        {
            return new FolderCacheStore(Location);
        }

        var credential = Environment.GetEnvironmentVariable(CredentialVariable);
        redactor = new SecretRedactor(credential);
        var options = new BlobClientOptions();
        // A cache that does not answer must not hold a build up for long: two quick retries, then local only.
        options.Retry.MaxRetries = 2;
        options.Retry.Delay = TimeSpan.FromMilliseconds(250);
        options.Retry.MaxDelay = TimeSpan.FromSeconds(2);
        options.Retry.NetworkTimeout = TimeSpan.FromSeconds(60);
        options.Diagnostics.IsLoggingEnabled = false;
        try
        {
            if (Location.StartsWith(AzureScheme, StringComparison.OrdinalIgnoreCase))
            {
                if (string.IsNullOrWhiteSpace(credential))
                {
                    Warn(reporter, DiagnosticCodes.RemoteCacheCredentialMissing, $"The remote cache {Location} needs a connection string in the environment variable {CredentialVariable}, which is not set: this run uses its local cache only.");
                    return null;
                }

                var (container, prefix) = SplitContainer(Location[AzureScheme.Length..]);
                var client = new BlobContainerClient(credential.Trim(), container, options);
                return new BlobCacheStore(client, prefix, $"{Location} (account {client.AccountName})");
            }

            var uri = new Uri(Location);
            var parts = new BlobUriBuilder(uri);
            var prefixPart = parts.BlobName ?? string.Empty;
            parts.BlobName = string.Empty;
            var containerUri = parts.ToUri();
            if (string.IsNullOrWhiteSpace(credential))
            {
                // A public container: read without a credential.
                return new BlobCacheStore(new BlobContainerClient(containerUri, options), prefixPart, Location);
            }

            var token = credential.Trim();
            if (!token.Contains("sig=", StringComparison.Ordinal) || token.Contains(';', StringComparison.Ordinal))
            {
                Warn(reporter, DiagnosticCodes.RemoteCacheCredentialInvalid, $"The environment variable {CredentialVariable} does not hold a SAS token (query parameters with sig=), which a container URL takes; a connection string goes with azure://container/prefix. This run uses its local cache only.");
                return null;
            }

            return new BlobCacheStore(new BlobContainerClient(containerUri, new AzureSasCredential(token.TrimStart('?')), options), prefixPart, Location);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException or UriFormatException)
        {
            // The parser's message may quote the value: only its type is said.
            Warn(reporter, DiagnosticCodes.RemoteCacheCredentialInvalid, $"The environment variable {CredentialVariable} does not hold a usable connection string for {Location} ({e.GetType().Name}). This run uses its local cache only.");
            return null;
        }
    }

    /// <summary>"container/some/prefix" as its container and prefix.</summary>
    internal static (string Container, string Prefix) SplitContainer(string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? (text, string.Empty) : (text[..slash], text[(slash + 1)..].Trim('/'));
    }

    private void Warn(IPipelineReporter reporter, string code, string message) => reporter.Report(Diagnostic.Warning(code, message));
}

/// <summary>Takes a credential's secret parts out of text before it is shown: messages of the store's client may quote them.</summary>
public sealed class SecretRedactor
{
    private readonly string[] _secrets;

    /// <summary>A redactor of <paramref name="credential"/> and its secret parts (an account key, a SAS token and its signature).</summary>
    public SecretRedactor(string? credential)
    {
        var secrets = new List<string>();
        if (!string.IsNullOrWhiteSpace(credential))
        {
            secrets.Add(credential.Trim());
            foreach (var part in credential.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var equals = part.IndexOf('=', StringComparison.Ordinal);
                if (equals > 0 && part[..equals] is "AccountKey" or "SharedAccessSignature")
                {
                    secrets.Add(part[(equals + 1)..]);
                }
            }

            foreach (Match signature in Regex.Matches(credential, "sig=([^&;]+)", RegexOptions.CultureInvariant))
            {
                secrets.Add(signature.Groups[1].Value);
                secrets.Add(Uri.UnescapeDataString(signature.Groups[1].Value));
            }
        }

        // Longest first, so a part is never left behind by a shorter match inside it.
        _secrets = [.. secrets.Where(s => s.Length >= 8).Distinct(StringComparer.Ordinal).OrderByDescending(s => s.Length)];
    }

    /// <summary>A redactor with nothing to hide (a folder store).</summary>
    public static SecretRedactor None { get; } = new(null);

    /// <summary><paramref name="text"/> with every secret part replaced by "***".</summary>
    public string Redact(string text) => _secrets.Aggregate(text, (current, secret) => current.Replace(secret, "***", StringComparison.Ordinal));
}
