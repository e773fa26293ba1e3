using System.Diagnostics;

namespace ModelCompression.Core.Tests.Reports;

/// <summary>Runs Debian's <c>chromium</c> headless: renders a local page to its DOM or to a PNG screenshot.</summary>
internal sealed class HeadlessChromium
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    private readonly string _executable;
    private readonly string _scratch;

    private HeadlessChromium(string executable, string scratch)
    {
        _executable = executable;
        _scratch = scratch;
    }

    /// <summary>
    /// The browser on PATH. Fails the test (never skips it) when there is none: the HTML report's promise is
    /// checked in a real browser, and build/test.sh installs one.
    /// </summary>
    public static HeadlessChromium Find(string scratchFolder)
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var executable = new[] { "chromium", "chromium-browser" }
            .SelectMany(name => path.Select(folder => Path.Join(folder, name)))
            .FirstOrDefault(File.Exists);
        Assert.True(
            executable is not null,
            "Headless Chromium is needed to check report.html but 'chromium' is not on PATH. Install it with "
            + "'apt-get install -y chromium' (Debian package 'chromium'; bash build/test.sh installs it).");
        return new HeadlessChromium(executable!, scratchFolder);
    }

    /// <summary>The page's DOM after it loaded, serialized as HTML.</summary>
    public string DumpDom(string htmlFile) => Run("--dump-dom", new Uri(htmlFile).AbsoluteUri);

    /// <summary>Writes a screenshot of the page at the given window size.</summary>
    public void Screenshot(string htmlFile, string pngFile, int width, int height) =>
        Run($"--screenshot={pngFile}", $"--window-size={width},{height}", "--hide-scrollbars", new Uri(htmlFile).AbsoluteUri);

    private string Run(params string[] arguments)
    {
        var start = new ProcessStartInfo(_executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };

        // A profile folder per run: parallel runs must not share (and lock) one.
        string[] common = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", $"--user-data-dir={Path.Join(_scratch, "profile-" + Guid.NewGuid().ToString("N"))}"];
        foreach (var argument in common.Concat(arguments))
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(Timeout))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"chromium did not finish within {Timeout.TotalSeconds} s: {string.Join(' ', arguments)}");
        }

        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"chromium exited with {process.ExitCode}: {errors.Result}");
        return output.Result;
    }
}
