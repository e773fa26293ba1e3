using System.CommandLine;
using System.CommandLine.Parsing;
using ModelCompression.Common;

namespace ModelCompression.Cli;

/// <summary>
/// <c>--remote-cache</c>, <c>--remote-cache-mode</c> and <c>--remote-cache-credential-env</c>: the remote stage cache as a
/// command line (or a line of a <c>--recipes</c> file, which the MSBuild task writes) sets it over the recipe's
/// <c>cache:</c>. A folder is made absolute against the current folder; a location or mode that cannot be used is a
/// usage error naming the option.
/// </summary>
internal sealed class RemoteCacheCommandLine
{
    public Option<string?> Location { get; } = new("--remote-cache")
    {
        Description = "The remote stage cache behind the local one (overrides the recipe's cache.remote): a shared folder, azure://container/prefix "
            + "(the credential variable holds a connection string) or https://account.blob.core.windows.net/container/prefix (it holds a SAS token).",
        HelpName = "folder|url",
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
            if (RemoteCacheOptions.LocationProblem(text) is { } problem)
            {
                result.AddError($"--remote-cache: {problem}.");
                return null;
            }

            return RemoteCacheOptions.Absolute(text, Environment.CurrentDirectory);
        },
    };

    public Option<RemoteCacheMode?> Mode { get; } = new("--remote-cache-mode")
    {
        Description = "read: take entries, never write (pull requests); read-write: also upload what this run builds (trusted builds); off: no remote cache. Overrides the recipe's cache.mode (default read).",
        HelpName = string.Join('|', RemoteCacheOptions.ModeNames),
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
            if (RemoteCacheOptions.TryParseMode(text, out var mode))
            {
                return mode;
            }

            result.AddError($"--remote-cache-mode must be one of {string.Join(", ", RemoteCacheOptions.ModeNames)}, not '{text}'.");
            return null;
        },
    };

    public Option<string?> CredentialVariable { get; } = new("--remote-cache-credential-env")
    {
        Description = $"The environment variable holding the remote cache's connection string or SAS token (default {RemoteCacheOptions.DefaultCredentialVariable}); the value is never printed or written.",
        HelpName = "variable",
        CustomParser = result =>
        {
            var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
            if (System.Text.RegularExpressions.Regex.IsMatch(text, "^[A-Za-z_][A-Za-z0-9_]*$"))
            {
                return text;
            }

            result.AddError($"--remote-cache-credential-env takes the name of an environment variable (letters, digits and '_'), not '{text}': the credential itself never goes on a command line.");
            return null;
        },
    };

    /// <summary>The three options, to add to a command.</summary>
    public IEnumerable<Option> All => [Location, Mode, CredentialVariable];

    /// <summary>What <paramref name="parse"/> sets, over <paramref name="fallback"/> (a command's options under a recipe line's); null when neither sets anything.</summary>
    public RemoteCacheOptions? Bind(ParseResult parse, RemoteCacheOptions? fallback = null)
    {
        var location = parse.GetValue(Location) ?? fallback?.Location;
        var mode = parse.GetValue(Mode) ?? fallback?.Mode;
        var variable = parse.GetValue(CredentialVariable) ?? fallback?.CredentialVariable;
        return location is null && mode is null && variable is null ? null : new RemoteCacheOptions(location, mode, variable);
    }
}
