using System.Globalization;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Native.Packages;

namespace ModelCompression.Cli;

/// <summary>
/// The tool's first use on a machine: libtorch (600 MB that the tool package does not carry) is checked before
/// any work, and fetched through NuGet into the global packages folder when missing, with progress on stderr
/// (stdout stays the command's own output).
/// </summary>
internal static class FirstUse
{
    private static LibTorchAvailability? _checked;

    /// <summary>Finds libtorch, or fetches it from the user's NuGet sources (once per process).</summary>
    /// <exception cref="Diagnostics.CompressionException">MC4005 or MC4006, with the command that fixes it.</exception>
    public static LibTorchAvailability EnsureLibTorch(CancellationToken cancellationToken)
    {
        if (_checked is not null)
        {
            return _checked;
        }

        var interactive = !Console.IsErrorRedirected && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"));
        var printer = new DownloadProgressPrinter(Console.Error, interactive);
        _checked = LibTorchPackage.EnsureAsync(Directory.GetCurrentDirectory(), printer, cancellationToken).GetAwaiter().GetResult();
        if (_checked.Package is { Fetched: true })
        {
            Console.Error.WriteLine(Describe(_checked));
        }

        return _checked;
    }

    /// <summary>One line for doctor: what was found or fetched, from where, how big, into which folder.</summary>
    public static string Describe(LibTorchAvailability availability)
    {
        if (!availability.Managed)
        {
            return "(TorchSharp's own loading)";
        }

        if (availability.Package is not { } package)
        {
            return $"{availability.LibTorchDirectory ?? "(not found)"}  [{availability.Source}]";
        }

        var download = MegaBytes(package.PackageBytes);
        var disk = MegaBytes(package.FolderBytes());
        return package.Fetched
            ? string.Create(CultureInfo.InvariantCulture, $"{package.Id} {package.Version} fetched now from {package.Source} ({download} download in {package.Elapsed.TotalSeconds:F1} s, {disk} on disk) into {package.Folder}")
            : $"{package.Id} {package.Version} found in {package.Folder} ({download} package, {disk} on disk)  [{availability.Source}]";
    }

    private static string MegaBytes(long bytes) => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1e6:F1} MB");
}
