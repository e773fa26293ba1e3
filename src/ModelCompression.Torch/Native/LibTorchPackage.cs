using System.Runtime.InteropServices;
using ModelCompression.Torch.Native.Packages;
using NuGet.Configuration;
using NuGet.Versioning;

namespace ModelCompression.Torch.Native;

/// <summary>Where the engine's libtorch is, and whether it was fetched now.</summary>
/// <param name="Managed">False on platforms where TorchSharp's own loading is used (nothing to check or fetch).</param>
/// <param name="LibTorchDirectory">The folder with libc10.so, libtorch_cpu.so and libtorch.so (null when not managed).</param>
/// <param name="Source">Where that folder came from: the environment variable, the app folder or the NuGet packages folder.</param>
/// <param name="Package">The package in the global packages folder, when libtorch comes from there.</param>
public sealed record LibTorchAvailability(bool Managed, string? LibTorchDirectory, string? Source, NativePackageResult? Package);

/// <summary>
/// The libtorch package the engine needs (<c>libtorch-cpu-linux-x64</c> of the version TorchSharp was built
/// against), found where <see cref="TorchNativeLoader"/> looks, or fetched into the NuGet global packages folder
/// on first use of the tool. Only checks files; loads nothing.
/// </summary>
public static class LibTorchPackage
{
    /// <summary>The NuGet package id of libtorch for CPUs on Linux x64.</summary>
    public const string PackageId = "libtorch-cpu-linux-x64";

    /// <summary>
    /// The request for the libtorch package: exactly <paramref name="version"/>, because libLibTorchSharp.so is
    /// built against one libtorch release (a newer one breaks its C++ symbols).
    /// </summary>
    public static NativePackageRequest Request(string version)
    {
        var exact = NuGetVersion.Parse(version);
        return new NativePackageRequest(
            PackageId,
            new VersionRange(exact, includeMinVersion: true, exact, includeMaxVersion: true),
            $"connect to your package source and run `dotnet compress doctor`, which fetches it; offline, add a source that has {PackageId}.{exact.ToNormalizedString()}.nupkg "
            + $"(`dotnet nuget add source <folder-or-URL> --name libtorch`, a folder holding the .nupkg will do); or set {TorchNativeLoader.LibTorchDirVariable} "
            + "to a folder holding libc10.so, libtorch_cpu.so and libtorch.so of that version.");
    }

    /// <summary>
    /// The global packages folder as restore run in <paramref name="workingDirectory"/> resolves it (NUGET_PACKAGES,
    /// then globalPackagesFolder in the nuget.config hierarchy), or null when the configuration cannot be read.
    /// </summary>
    public static string? GlobalPackagesFolder(string workingDirectory)
    {
        try
        {
            return SettingsUtility.GetGlobalPackagesFolder(Settings.LoadDefaultSettings(workingDirectory));
        }
        catch (NuGetConfigurationException)
        {
            // The loader then falls back to NUGET_PACKAGES or ~/.nuget/packages; the fetch reports the bad file.
            return null;
        }
    }

    /// <summary>
    /// Makes sure libtorch is where the loader finds it: the folder set by <c>MODELCOMPRESSION_LIBTORCH_DIR</c> or
    /// the app folder are taken as they are; otherwise the package is looked for in the global packages folder and
    /// fetched from the sources in <paramref name="workingDirectory"/>'s nuget.config hierarchy when missing.
    /// </summary>
    /// <exception cref="Diagnostics.CompressionException">MC4005: not there and no source has it; MC4006: the download is corrupt.</exception>
    public static async Task<LibTorchAvailability> EnsureAsync(string workingDirectory, IProgress<DownloadProgress>? progress, CancellationToken cancellationToken = default)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            return new LibTorchAvailability(false, null, null, null);
        }

        var env = TorchNativeEnvironment.Current();
        var (dir, source) = TorchNativeLoader.FindLibTorch(env, []);
        if (dir is not null && source == TorchNativeLoader.PackagesFolderSource)
        {
            // Found complete (with .nupkg.metadata) where restore puts it: no second read of the configuration.
            var folder = Path.GetFullPath(Path.Combine(dir, "..", "..", ".."));
            var nupkg = new FileInfo(Path.Combine(folder, $"{PackageId}.{env.LibTorchVersion}.nupkg"));
            var found = new NativePackageResult(PackageId, NuGetVersion.Parse(env.LibTorchVersion), folder, false, null, nupkg.Exists ? nupkg.Length : 0, TimeSpan.Zero);
            return new LibTorchAvailability(true, dir, source, found);
        }

        if (dir is not null)
        {
            return new LibTorchAvailability(true, dir, source, null);
        }

        if (!string.IsNullOrWhiteSpace(env.GetVariable(TorchNativeLoader.LibTorchDirVariable)))
        {
            // An explicit folder is used alone and never filled by a fetch; the loader reports what is wrong with it.
            return new LibTorchAvailability(true, null, TorchNativeLoader.LibTorchDirVariable, null);
        }

        var settings = NativePackageFetcher.LoadSettings(workingDirectory);
        var fetcher = new NativePackageFetcher(settings, SettingsUtility.GetGlobalPackagesFolder(settings), progress);
        var package = await fetcher.EnsureAsync(Request(env.LibTorchVersion), cancellationToken).ConfigureAwait(false);
        return new LibTorchAvailability(true, Path.Combine(package.Folder, "runtimes", TorchNativeLoader.NativeRid, "native"), TorchNativeLoader.PackagesFolderSource, package);
    }
}
