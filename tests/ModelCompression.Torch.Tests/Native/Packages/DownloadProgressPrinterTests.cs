using ModelCompression.Torch.Native.Packages;
using NuGet.Versioning;

namespace ModelCompression.Torch.Tests.Native.Packages;

public sealed class DownloadProgressPrinterTests
{
    private static readonly NuGetVersion Version = NuGetVersion.Parse("2.10.0");

    private static DownloadProgress At(long received, long? total, double seconds) =>
        new("libtorch-cpu-linux-x64", Version, received, total, TimeSpan.FromSeconds(seconds), "https://feed.example/v3/index.json");

    [Fact]
    public void Redirected_output_gets_a_header_and_one_plain_line_per_tenth()
    {
        var output = new StringWriter();
        var printer = new DownloadProgressPrinter(output, interactive: false);
        const long total = 128_200_806;
        printer.Report(At(0, null, 0));
        for (long received = 256 * 1024; received < total; received += 256 * 1024)
        {
            printer.Report(At(received, total, received / 40e6));
        }

        printer.Report(At(total, total, total / 40e6));
        var lines = output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal("Fetching libtorch-cpu-linux-x64 2.10.0 from https://feed.example/v3/index.json", lines[0]);
        // 0%, 10%, ..., 90% and the end: no carriage returns, nothing a log viewer shows as noise.
        Assert.Equal(12, lines.Length);
        Assert.DoesNotContain('\r', output.ToString());
        Assert.Equal("libtorch-cpu-linux-x64 2.10.0:  50% of 128.2 MB (64.2 MB), 40.0 MB/s, 2 s left", lines[6]);
        Assert.Equal("libtorch-cpu-linux-x64 2.10.0: 100% of 128.2 MB (128.2 MB), 40.0 MB/s, done in 3.2 s", lines[^1]);
    }

    [Fact]
    public void A_terminal_gets_one_line_rewritten_in_place_and_ended_once()
    {
        var output = new StringWriter();
        var printer = new DownloadProgressPrinter(output, interactive: true);
        printer.Report(At(0, null, 0));
        printer.Report(At(500_000, 1_000_000, 1));
        printer.Report(At(1_000_000, 1_000_000, 2));
        printer.Report(At(1_000_000, 1_000_000, 2));

        var text = output.ToString();
        Assert.StartsWith("Fetching libtorch-cpu-linux-x64 2.10.0 from ", text, StringComparison.Ordinal);
        Assert.Contains("\rlibtorch-cpu-linux-x64 2.10.0:  50% of 1.0 MB (0.5 MB), 0.5 MB/s, 1 s left", text, StringComparison.Ordinal);
        Assert.EndsWith("\rlibtorch-cpu-linux-x64 2.10.0: 100% of 1.0 MB (1.0 MB), 0.5 MB/s, done in 2.0 s" + Environment.NewLine, text, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_a_size_the_line_says_megabytes_and_speed()
    {
        Assert.Equal("libtorch-cpu-linux-x64 2.10.0: 32.0 MB, 16.0 MB/s", DownloadProgressPrinter.Describe(At(32_000_000, null, 2)));
    }
}
