using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using ModelCompression.Diagnostics;

namespace ModelCompression.Inference;

/// <summary>
/// ONNX Runtime's GPU build, loaded from the NuGet packages folder in place of the CPU build the engine ships with.
/// The GPU package (Microsoft.ML.OnnxRuntime.Gpu.Linux) is a 246 MB download, 550 MB in the packages folder, most of it the
/// CUDA provider, so it is not a dependency: only a process that asks for CUDA loads it, and only a project that
/// asks for CUDA downloads it (the MSBuild targets run `dotnet package download` once). Its libonnxruntime.so is a different
/// native library from the CPU package's, with the same API; it needs nothing beyond the C and C++ runtimes to load
/// (the CUDA provider is a separate library it opens when a session asks for CUDA), and runs CPU sessions too.
/// One process holds one of the two builds: this must run before anything in the process calls ONNX Runtime.
/// </summary>
public static class OnnxRuntimeGpuBuild
{
    /// <summary>The NuGet package of ONNX Runtime's Linux GPU build.</summary>
    public const string PackageId = "Microsoft.ML.OnnxRuntime.Gpu.Linux";

    private const string NativeLibraryName = "onnxruntime";
    private const string NativeFileName = "libonnxruntime.so";

    /// <summary>The files of the package's native folder the CUDA provider needs.</summary>
    private static readonly string[] NativeFiles = [NativeFileName, "libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"];

    private static readonly Lock Gate = new();
    private static string? _loadedFrom;
    private static IntPtr _handle;

    /// <summary>
    /// The version of the GPU build to load: the managed ONNX Runtime's own (its native library must offer the API
    /// version the managed code asks for).
    /// </summary>
    public static string Version { get; } = ManagedVersion();

    /// <summary>Where the GPU build's native libraries were loaded from in this process; null when they were not.</summary>
    public static string? LoadedFrom
    {
        get
        {
            lock (Gate)
            {
                return _loadedFrom;
            }
        }
    }

    /// <summary>The variable through which the MSBuild task hands over its build's package folders (';'-separated).</summary>
    public const string PackageFoldersVariable = "MODELCOMPRESSION_PACKAGE_FOLDERS";

    /// <summary>The NuGet global packages folder as NuGet finds it by default: NUGET_PACKAGES, else ~/.nuget/packages.</summary>
    public static string PackagesRoot(Func<string, string?> getVariable)
    {
        ArgumentNullException.ThrowIfNull(getVariable);
        var configured = getVariable("NUGET_PACKAGES");
        return !string.IsNullOrWhiteSpace(configured)
            ? configured
            : Path.Combine(getVariable("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
    }

    /// <summary>
    /// Where to look for the GPU build, in order: the package folders of the build that started the engine
    /// (<see cref="PackageFoldersVariable"/>: its global packages folder, which a nuget.config may have moved, and its
    /// fallback folders), then <see cref="PackagesRoot"/>.
    /// </summary>
    public static IReadOnlyList<string> PackageFolders(Func<string, string?> getVariable)
    {
        ArgumentNullException.ThrowIfNull(getVariable);
        var fromBuild = (getVariable(PackageFoldersVariable) ?? string.Empty).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return [.. fromBuild.Select(f => f.TrimEnd('/')).Append(PackagesRoot(getVariable)).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The folder of the GPU build's native libraries inside <paramref name="packagesRoot"/>.</summary>
    public static string NativeDirectory(string packagesRoot) =>
        Path.Combine(packagesRoot, PackageId.ToLowerInvariant(), Version, "runtimes", "linux-x64", "native");

    /// <summary>The one command that puts the GPU build where <see cref="Load"/> looks for it.</summary>
    public static string DownloadCommand(string packagesRoot) => $"dotnet package download {PackageId}@{Version} -o {packagesRoot}";

    /// <summary>
    /// Makes ONNX Runtime's managed API call the GPU build found in the first of <paramref name="packageFolders"/> that
    /// has it, and loads it; returns its folder. Calling it again returns the folder loaded first.
    /// </summary>
    /// <exception cref="CompressionException">
    /// MC4009 when the package is not in the packages folder (the message gives the command that fetches it); MC4008
    /// when another ONNX Runtime build is loaded in this process already or the library cannot be loaded.
    /// </exception>
    public static string Load(IReadOnlyList<string> packageFolders)
    {
        ArgumentNullException.ThrowIfNull(packageFolders);
        ArgumentOutOfRangeException.ThrowIfZero(packageFolders.Count);
        lock (Gate)
        {
            if (_loadedFrom is not null)
            {
                return _loadedFrom;
            }

            var tried = new List<string>();
            string? directory = null;
            foreach (var candidate in packageFolders.Select(NativeDirectory))
            {
                var missing = NativeFiles.Where(f => !File.Exists(Path.Combine(candidate, f))).ToList();
                if (missing.Count == 0)
                {
                    directory = candidate;
                    break;
                }

                tried.Add(Directory.Exists(candidate) ? $"{candidate} has no {string.Join(", ", missing)}" : $"{candidate} does not exist");
            }

            if (directory is null)
            {
                var root = packageFolders[0];
                throw CompressionException.Error(
                    DiagnosticCodes.OnnxRuntimeGpuBuildMissing,
                    $"execution provider cuda needs ONNX Runtime's GPU build, the NuGet package {PackageId} {Version} (246 MB), which is not in the NuGet packages folder "
                    + $"({root}; NUGET_PACKAGES moves it): {string.Join("; ", tried)}. "
                    + $"Get it with: {DownloadCommand(root)} (a project's build does that itself when CompressModelExecutionProvider is cuda).");
            }

            var library = Path.Combine(directory, NativeFileName);
            if (LoadedOnnxRuntimeLibraries().FirstOrDefault(l => !string.Equals(l, library, StringComparison.Ordinal)) is { } other)
            {
                throw AlreadyLoaded(other);
            }

            try
            {
                _handle = NativeLibrary.Load(library);
            }
            catch (DllNotFoundException e)
            {
                throw CompressionException.Error(DiagnosticCodes.CudaUnavailable, $"execution provider cuda: ONNX Runtime's GPU build '{library}' cannot be loaded: {e.Message}");
            }

            try
            {
                // ONNX Runtime's own resolver (registered when its native methods are first used) would find the CPU
                // build next to the application; it must stay off for this one to be used.
                OrtEnv.DisableDllImportResolver = true;
                NativeLibrary.SetDllImportResolver(typeof(OrtEnv).Assembly, Resolve);
            }
            catch (InvalidOperationException)
            {
                throw AlreadyLoaded("a resolver registered before this run");
            }

            _loadedFrom = directory;
            return directory;
        }
    }

    /// <summary>The ONNX Runtime libraries (libonnxruntime.so) mapped into this process, by path.</summary>
    public static IReadOnlyList<string> LoadedOnnxRuntimeLibraries()
    {
        const string Maps = "/proc/self/maps";
        if (!File.Exists(Maps))
        {
            return [];
        }

        // Each line ends with the mapped file's path when it maps a file.
        return
        [
            .. File.ReadLines(Maps)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                .Where(f => f.Length >= 6 && f[^1].StartsWith('/') && Path.GetFileName(f[^1]) == NativeFileName)
                .Select(f => f[^1])
                .Distinct(StringComparer.Ordinal),
        ];
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        lock (Gate)
        {
            return libraryName == NativeLibraryName ? _handle : IntPtr.Zero;
        }
    }

    private static CompressionException AlreadyLoaded(string what) =>
        CompressionException.Error(
            DiagnosticCodes.CudaUnavailable,
            $"execution provider cuda: this process has loaded ONNX Runtime's CPU build already ({what}), and one process holds one build. "
            + "Run the recipes that use cuda in a process of their own (give every recipe of one 'dotnet compress run --recipes' list the same execution provider).");

    private static string ManagedVersion()
    {
        var version = typeof(OrtEnv).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? typeof(OrtEnv).Assembly.GetName().Version?.ToString(3)
            ?? "0.0.0";
        // "1.32.0+fab30a4…": the package version is what comes before the source revision.
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return plus < 0 ? version : version[..plus];
    }
}
