namespace ModelCompression.Cli.Tests;

/// <summary>Usage mistakes are usage errors (exit 2, MC1010 on stderr) that name the mistaken word and, where one is close, the right one.</summary>
public sealed class UsageTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("serv", "--help")]
    [InlineData("serv")]
    [InlineData("compres", "run", "x.yaml")]
    public void An_unknown_verb_is_a_usage_error_naming_it_not_the_root_help(params string[] arguments)
    {
        var result = CompressCli.Run(_dir.Path, arguments);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains($"error MC1010: Unknown command '{arguments[0]}' for 'dotnet compress'", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Usage:", result.Stdout, StringComparison.Ordinal);
        Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.Contains("MC1010", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("doctr", "doctor")]
    [InlineData("optons", "options")]
    [InlineData("Run", "run")]
    public void A_mistyped_verb_gets_the_closest_one(string typed, string meant)
    {
        var result = CompressCli.Run(_dir.Path, typed, "--help");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains($"Unknown command '{typed}' for 'dotnet compress': did you mean '{meant}'?", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_verb_far_from_every_command_lists_the_commands()
    {
        var result = CompressCli.Run(_dir.Path, "frobnicate");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("Unknown command 'frobnicate' for 'dotnet compress'. Commands: run, doctor,", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_version_is_a_usage_error_not_a_missing_recipe()
    {
        var result = CompressCli.Run(_dir.Path, "run", "--version");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("error MC1010: Unknown option '--version' for 'dotnet compress run'", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("'dotnet compress --version'", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("does not exist", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--colour")]
    [InlineData("--colour", "red")]
    [InlineData("--colour=red")]
    public void An_unknown_option_names_itself_once(params string[] option)
    {
        var recipe = _dir.Write("r.compress.yaml", "task: classification\n");

        foreach (var arguments in new string[][] { ["run", recipe, .. option], ["run", .. option, recipe] })
        {
            var result = CompressCli.Run(_dir.Path, arguments);

            Assert.True(result.ExitCode == 2, result.ToString());
            var errors = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.Contains("error", StringComparison.Ordinal)).ToList();
            var error = Assert.Single(errors);
            Assert.Contains("error MC1010: Unknown option '--colour' for 'dotnet compress run'. Options: --cache, --output,", error, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--ouput", "--output")]
    [InlineData("--treads", "--threads")]
    [InlineData("--jsno", "--json")]
    public void A_mistyped_option_gets_the_closest_one(string typed, string meant)
    {
        var result = CompressCli.Run(_dir.Path, "run", "r.yaml", typed, "x");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains($"Unknown option '{typed}' for 'dotnet compress run': did you mean '{meant}'?", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void An_extra_argument_is_named()
    {
        var result = CompressCli.Run(_dir.Path, "run", "a.yaml", "b.yaml");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("error MC1010: Unexpected argument 'b.yaml' for 'dotnet compress run'.", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unrecognized", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_negative_value_of_an_option_is_its_value_not_an_unknown_option()
    {
        var result = CompressCli.Run(_dir.Path, "run", "a.yaml", "--threads", "-1");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("--threads must be a whole number", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Unknown option", result.Stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("run", "--help")]
    [InlineData("baseline", "accept", "-h")]
    public void Help_lists_the_exit_codes(params string[] arguments)
    {
        var result = CompressCli.Run(_dir.Path, arguments);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("Usage:", result.Stdout, StringComparison.Ordinal);
        var codes = result.Stdout[result.Stdout.IndexOf("Exit codes:", StringComparison.Ordinal)..];
        Assert.Contains("  0  success", codes, StringComparison.Ordinal);
        Assert.Contains("  1  error", codes, StringComparison.Ordinal);
        Assert.Contains("  2  usage error", codes, StringComparison.Ordinal);
        Assert.Contains("  3  a gate failed", codes, StringComparison.Ordinal);
        Assert.DoesNotContain("Additional Arguments", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void A_recipe_list_line_with_an_unknown_option_is_named_at_its_line()
    {
        var list = _dir.Write("recipes.rsp", "# one per line\nr.yaml --ouput out\n");

        var result = CompressCli.Run(_dir.Path, "run", "--recipes", list);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("recipes.rsp(2): error MC1010: Unknown option '--ouput' for 'run': did you mean '--output'?", result.Stderr, StringComparison.Ordinal);
    }
}
