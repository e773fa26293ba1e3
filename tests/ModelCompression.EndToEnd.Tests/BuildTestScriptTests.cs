using System.Diagnostics;
using System.Runtime.Versioning;

namespace ModelCompression.EndToEnd.Tests;

/// <summary>
/// The README's test command, build/test.sh, as a fresh machine meets it. The script runs for real under bash, on a
/// PATH that holds only the tools it uses and stand-ins for apt-get, sudo, dpkg-query, id and dotnet that record how
/// they were called: so the "missing" branches are checked without changing the system's packages.
/// </summary>
[SupportedOSPlatform("linux")] // the script sets up Debian
public sealed class BuildTestScriptTests : IDisposable
{
    // What build/test.sh and .ci/run run besides the stand-ins; taken from the real system.
    private static readonly string[] RealTools = ["bash", "env", "mktemp", "tee", "grep", "awk", "rm", "dirname", "head", "tail", "date"];

    private readonly string _root = Path.Combine(Path.GetTempPath(), $"mc-testsh-{Guid.NewGuid():N}");
    private readonly string _bin;
    private readonly string _repoRoot = RepoRoot.Find();

    public BuildTestScriptTests()
    {
        _bin = Directory.CreateDirectory(Path.Combine(_root, "bin")).FullName;
        foreach (var tool in RealTools)
        {
            var real = new[] { "/usr/bin", "/bin" }.Select(folder => Path.Join(folder, tool)).First(File.Exists);
            File.CreateSymbolicLink(Path.Join(_bin, tool), real);
        }

        Shim("apt-get", """
            echo "apt-get $*" >> "$CALLS"
            """);
        Shim("sudo", """
            echo "sudo" >> "$CALLS"
            "$@"
            """);
        Shim("id", """
            echo "$FAKE_UID"
            """);
        Shim("dpkg-query", """
            for p in $FAKE_INSTALLED; do [ "$p" = "${@: -1}" ] && { printf 'install ok installed'; exit 0; }; done
            printf 'unknown ok not-installed'; exit 1
            """);
        // npm is there (node is not, until apt-get installs nodejs); it records how it was asked to install Azurite.
        Shim("npm", """
            echo "npm $*" >> "$CALLS"
            """);
        // Two assemblies' result lines as dotnet test prints them; the script must sum them.
        Shim("dotnet", """
            echo "dotnet $*" >> "$CALLS"
            echo "Passed!  - Failed:     0, Passed:    10, Skipped:     1, Total:    11, Duration: 1 s - A.Tests.dll (net10.0)"
            echo "Failed!  - Failed:     2, Passed:     5, Skipped:     0, Total:     7, Duration: 2 s - B.Tests.dll (net10.0)"
            exit 1
            """);
    }

    [Fact]
    public void On_a_fresh_machine_a_user_gets_what_is_missing_through_sudo_then_every_test_runs()
    {
        var (exitCode, output, calls) = RunScript(uid: 1000);

        Assert.True(exitCode == 1, $"the exit status is dotnet test's\n{output}");
        Assert.Contains("not root: installing with sudo", output, StringComparison.Ordinal);
        var install = Assert.Single(calls, c => c.StartsWith("apt-get install", StringComparison.Ordinal));
        foreach (var package in new[] { "python3-torch", "chromium", "binutils", "nodejs" })
        {
            Assert.Contains($" {package}", install, StringComparison.Ordinal);
        }

        // Azurite, which the stage cache tests start, from npm into its own folder, after the packages and before the tests.
        Assert.Equal($"npm install --prefix {AzuritePrefix} --no-save --no-package-lock --no-audit --no-fund --loglevel=error azurite@3.37.0", calls[^2]);

        // Each apt-get goes through sudo, the package lists are refreshed before the install, and the tests run after.
        Assert.Equal(["sudo", "apt-get update -qq", "sudo"], calls.TakeWhile(c => !c.StartsWith("apt-get install", StringComparison.Ordinal)));
        Assert.Equal("dotnet test ModelCompression.sln -nologo", calls[^1]);
        Assert.Equal("15 passed, 2 failed, 1 skipped", output.TrimEnd().Split('\n')[^1]);
    }

    [Fact]
    public void With_everything_installed_nothing_is_installed_and_arguments_go_to_dotnet_test()
    {
        Shim("chromium", "exit 0");
        Shim("readelf", "exit 0");
        Shim("node", "exit 0");
        // Azurite already installed at the version the tests want.
        Directory.CreateDirectory(Path.Join(AzuritePrefix, "node_modules", ".bin"));
        Directory.CreateDirectory(Path.Join(AzuritePrefix, "node_modules", "azurite"));
        File.WriteAllText(Path.Join(AzuritePrefix, "node_modules", "azurite", "package.json"), "{\n  \"name\": \"azurite\",\n  \"version\": \"3.37.0\"\n}\n");
        var azurite = Path.Join(AzuritePrefix, "node_modules", ".bin", "azurite-blob");
        File.WriteAllText(azurite, "#!/bin/bash\n");
        File.SetUnixFileMode(azurite, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var (exitCode, output, calls) = RunScript(uid: 1000, installed: "python3-torch", arguments: ["--filter", "Category!=Slow"]);

        Assert.True(exitCode == 1, output);
        Assert.Contains("everything the tests need is installed", output, StringComparison.Ordinal);
        Assert.Contains("azurite 3.37.0 is installed", output, StringComparison.Ordinal);
        Assert.Equal(["dotnet test ModelCompression.sln -nologo --filter Category!=Slow"], calls);
    }

    [Fact]
    public void A_dry_run_says_what_it_would_install_and_run_and_runs_nothing()
    {
        var (exitCode, output, calls) = RunScript(uid: 0, arguments: ["--dry-run"]);

        Assert.True(exitCode == 0, output);
        Assert.Empty(calls);
        Assert.Contains("would run: apt-get update -qq", output, StringComparison.Ordinal);
        Assert.Contains("would run: env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-torch", output, StringComparison.Ordinal);
        Assert.Contains($"would run: npm install --prefix {AzuritePrefix} --no-save --no-package-lock --no-audit --no-fund --loglevel=error azurite@3.37.0", output, StringComparison.Ordinal);
        Assert.Contains("would run: dotnet test ModelCompression.sln -nologo", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_apt_get_it_stops_before_the_tests_and_says_what_to_install()
    {
        File.Delete(Path.Join(_bin, "apt-get"));

        var (exitCode, output, calls) = RunScript(uid: 0);

        Assert.NotEqual(0, exitCode);
        Assert.Empty(calls);
        Assert.Contains("build/test.sh: error: apt-get is not available, so python3-torch", output, StringComparison.Ordinal);
        Assert.Contains("then run: dotnet test ModelCompression.sln", output, StringComparison.Ordinal);
    }

    [Fact]
    public void As_a_user_without_sudo_it_stops_and_gives_the_command_to_run_as_root()
    {
        File.Delete(Path.Join(_bin, "sudo"));

        var (exitCode, output, calls) = RunScript(uid: 1000);

        Assert.NotEqual(0, exitCode);
        Assert.Empty(calls);
        Assert.Contains("needs root and sudo is not available. As root run: apt-get install -y --no-install-recommends python3-torch", output, StringComparison.Ordinal);
    }

    [Fact]
    public void CI_runs_exactly_the_script_and_ends_with_its_timing_and_summary_lines()
    {
        var (exitCode, output, calls) = Run(Path.Join(_repoRoot, ".ci", "run"), uid: 0, installed: "python3-torch");

        Assert.True(exitCode == 1, $"the exit status is dotnet test's\n{output}");
        Assert.Equal("dotnet test ModelCompression.sln -nologo", calls[^1]);
        var lines = output.TrimEnd().Split('\n');
        Assert.Matches(@"^== CI took \d+ s$", lines[^2]);
        Assert.Equal("15 passed, 2 failed, 1 skipped", lines[^1]);
        Assert.Single(lines, l => l.EndsWith("passed, 2 failed, 1 skipped", StringComparison.Ordinal));
    }

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    /// <summary>Where the script installs Azurite in these runs (AZURITE_PREFIX): not the repository's .tools folder.</summary>
    private string AzuritePrefix => Path.Join(_root, "azurite");

    private void Shim(string name, string body)
    {
        var path = Path.Join(_bin, name);
        File.WriteAllText(path, "#!/bin/bash\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private (int ExitCode, string Output, List<string> Calls) RunScript(int uid, string installed = "", params string[] arguments) =>
        Run(Path.Join(_repoRoot, "build", "test.sh"), uid, installed, arguments);

    private (int ExitCode, string Output, List<string> Calls) Run(string script, int uid, string installed = "", params string[] arguments)
    {
        var calls = Path.Join(_root, "calls.log");
        var start = new ProcessStartInfo(Path.Join(_bin, "bash"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(script);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["PATH"] = _bin;
        start.Environment["CALLS"] = calls;
        start.Environment["FAKE_UID"] = uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["FAKE_INSTALLED"] = installed;
        start.Environment["AZURITE_PREFIX"] = AzuritePrefix;
        using var process = Process.Start(start)!;
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(1)), $"{script} did not finish within a minute");
        var recorded = File.Exists(calls) ? File.ReadAllLines(calls).ToList() : [];
        return (process.ExitCode, output + errors.Result, recorded);
    }
}
