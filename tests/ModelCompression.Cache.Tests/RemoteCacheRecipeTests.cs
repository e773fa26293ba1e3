using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Recipes;

namespace ModelCompression.Cache.Tests;

/// <summary>The recipe's <c>cache: { remote, mode, credential_env }</c>, and how the command line's settings go over it.</summary>
public sealed class RemoteCacheRecipeTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_cache_section_names_the_store_its_mode_and_the_variable_with_the_credential()
    {
        var folder = TinyRecipe.Write(_dir.Path, cacheSection: "cache: { remote: ../fleet-cache, mode: read-write, credential_env: CI_CACHE }");
        var url = TinyRecipe.Write(_dir.Dir("url"), cacheSection: "cache: { remote: 'azure://models/ci/main' }");

        var shared = RecipeLoader.Load(folder).Cache;
        var blob = RecipeLoader.Load(url).Cache;

        // A folder is taken from the recipe's folder, as every path of a recipe is.
        Assert.Equal(new RemoteCacheOptions(Path.GetFullPath(Path.Join(_dir.Path, "..", "fleet-cache")), RemoteCacheMode.ReadWrite, "CI_CACHE"), shared);
        Assert.Equal(new RemoteCacheOptions("azure://models/ci/main", null, null), blob);
        Assert.Null(RecipeLoader.Load(TinyRecipe.Write(_dir.Dir("none"))).Cache);
    }

    [Theory]
    [InlineData("cache: { remote: 'azure://Models/ci' }", "cache.remote: 'Models' is not a blob container name")]
    [InlineData("cache: { remote: 'https://acct.blob.core.windows.net/models?sv=2025-01-05&sig=abc' }", "a SAS token goes in the credential variable, never where recipes, logs and reports show it")]
    [InlineData("cache: { remote: /mnt/cache, mode: write }", "must be one of read, read-write, off")]
    [InlineData("cache: { remote: /mnt/cache, credential_env: 'AccountKey=abc==' }", "is not an environment variable's name")]
    [InlineData("cache: { remote: /mnt/cache, credentials_env: CI_CACHE }", "credential_env")]
    [InlineData("cache: { mode: read }", "remote")]
    public void A_cache_section_that_cannot_be_used_is_an_error_at_its_line(string section, string expected)
    {
        var recipe = TinyRecipe.Write(_dir.Path, cacheSection: section);

        var error = Assert.Single(Assert.Throws<CompressionException>(() => RecipeLoader.Load(recipe)).Diagnostics);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.Equal((recipe, 15), (error.File, error.Line));
        Assert.StartsWith("MC100", error.Code, StringComparison.Ordinal);
    }

    [Fact]
    public void The_command_lines_settings_go_over_the_recipes_and_read_is_the_default_mode()
    {
        var recipe = new RemoteCacheOptions("/mnt/cache", RemoteCacheMode.ReadWrite, "CI_CACHE");

        Assert.Equal(new RemoteCacheSettings("/mnt/cache", RemoteCacheMode.ReadWrite, "CI_CACHE"), RemoteCacheOptions.Resolve(recipe, null));
        // A pull-request build keeps the recipe's store and makes it read-only.
        Assert.Equal(new RemoteCacheSettings("/mnt/cache", RemoteCacheMode.Read, "CI_CACHE"), RemoteCacheOptions.Resolve(recipe, new RemoteCacheOptions(null, RemoteCacheMode.Read, null)));
        Assert.Null(RemoteCacheOptions.Resolve(recipe, new RemoteCacheOptions(null, RemoteCacheMode.Off, null)));
        Assert.Equal(
            new RemoteCacheSettings("azure://c/p", RemoteCacheOptions.DefaultMode, RemoteCacheOptions.DefaultCredentialVariable),
            RemoteCacheOptions.Resolve(null, new RemoteCacheOptions("azure://c/p", null, null)));
        Assert.Equal(RemoteCacheMode.Read, RemoteCacheOptions.DefaultMode);
        Assert.Null(RemoteCacheOptions.Resolve(null, null));
    }

    [Fact]
    public void A_missing_or_malformed_credential_is_a_warning_that_never_shows_the_value_and_the_run_goes_on_locally()
    {
        var reporter = new RecordingReporter();
        var variable = $"MC_TEST_CREDENTIAL_{Guid.NewGuid():N}";

        Assert.Null(new RemoteCacheSettings("azure://models/ci", RemoteCacheMode.ReadWrite, variable).Open(reporter, out _));
        Environment.SetEnvironmentVariable(variable, "AccountName=devstoreaccount1;AccountKey=c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw==;BlobEndpoint=not a url");
        try
        {
            Assert.Null(new RemoteCacheSettings("azure://models/ci", RemoteCacheMode.ReadWrite, variable).Open(reporter, out _));
            Assert.Null(new RemoteCacheSettings("https://acct.blob.core.windows.net/models", RemoteCacheMode.Read, variable).Open(reporter, out _));
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }

        Assert.Equal([DiagnosticCodes.RemoteCacheCredentialMissing, DiagnosticCodes.RemoteCacheCredentialInvalid, DiagnosticCodes.RemoteCacheCredentialInvalid], reporter.Diagnostics.Select(d => d.Code));
        Assert.All(reporter.Diagnostics, d => Assert.Equal(DiagnosticSeverity.Warning, d.Severity));
        Assert.All(reporter.Diagnostics, d => Assert.Contains(variable, d.Message, StringComparison.Ordinal));
        Assert.All(reporter.Diagnostics, d => Assert.DoesNotContain("c2VjcmV0", d.Message, StringComparison.Ordinal));
    }

    [Fact]
    public void The_redactor_hides_an_account_key_a_sas_token_and_its_signature_in_any_text()
    {
        var redactor = new SecretRedactor("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5LWtleS1rZXk=;EndpointSuffix=core.windows.net");
        var sas = new SecretRedactor("?sv=2025-01-05&ss=b&sig=abc%2Bdef%3D1234");

        Assert.Equal("key=*** in a message", redactor.Redact("key=a2V5LWtleS1rZXk= in a message"));
        Assert.Equal("url ?sv=x&sig=*** failed", sas.Redact("url ?sv=x&sig=abc%2Bdef%3D1234 failed"));
        Assert.Equal("sig=*** decoded", sas.Redact("sig=abc+def=1234 decoded"));
    }
}
