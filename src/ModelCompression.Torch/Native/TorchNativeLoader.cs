using System.Reflection;
using System.Runtime.InteropServices;
using ModelCompression.Diagnostics;
using TorchSharp;

namespace ModelCompression.Torch.Native;

/// <summary>
/// Makes TorchSharp loadable on any Linux x64 host, without touching the system: loads libtorch by full path
/// from the app folder, <c>MODELCOMPRESSION_LIBTORCH_DIR</c> or the NuGet packages folder (so a system
/// libtorch, such as Debian's python3-torch 1.13, never wins), and loads libLibTorchSharp.so as it is when the
/// host libstdc++ defines every version it needs, or else a cached copy with the missing versions marked weak
/// (only when the symbols needing them are known to be unused). Call <see cref="EnsureLoaded"/> at every engine
/// entry point before any TorchSharp use.
/// </summary>
public static class TorchNativeLoader
{
    /// <summary>Folder holding libc10.so, libtorch_cpu.so and libtorch.so (and optionally libLibTorchSharp.so); used alone when set.</summary>
    public const string LibTorchDirVariable = "MODELCOMPRESSION_LIBTORCH_DIR";

    /// <summary>Folder for the patched libLibTorchSharp.so copy (default: $XDG_CACHE_HOME or ~/.cache, then modelcompression/native).</summary>
    public const string NativeCacheVariable = "MODELCOMPRESSION_NATIVE_CACHE";

    internal const string LibTorchSharpFileName = "libLibTorchSharp.so";
    internal const string NativeRid = "linux-x64";
    internal const string PackagesFolderSource = "NuGet packages folder";

    /// <summary>The libtorch files, in load order (each needs the ones before it).</summary>
    internal static readonly string[] LibTorchFiles = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];

    private static readonly Lock _gate = new();
    private static TorchNativeInfo? _info;
    private static CompressionException? _failure;
    private static Dictionary<string, IntPtr>? _handles;

    /// <summary>
    /// Loads TorchSharp's native libraries once per process (idempotent and thread-safe) and initialises its CPU
    /// backend. Later calls return the first call's result, or throw its exception again.
    /// </summary>
    /// <exception cref="CompressionException">MC4001: the libraries cannot be found or loaded; the message lists what was tried and what to do.</exception>
    public static TorchNativeInfo EnsureLoaded()
    {
        lock (_gate)
        {
            if (_info is not null)
            {
                return _info;
            }

            if (_failure is not null)
            {
                throw _failure;
            }

            try
            {
                // Before libgomp is loaded: it reads its wait policy once, in its constructor.
                Threading.OpenMpWaitPolicy.ApplyBeforeLoad();
                _info = Load(TorchNativeEnvironment.Current());
                Threading.EngineThreads.ApplyToTorch();
                return _info;
            }
            catch (CompressionException e)
            {
                _failure = e;
                throw;
            }
        }
    }

    /// <summary>Whether <see cref="EnsureLoaded"/> has loaded TorchSharp's native libraries in this process.</summary>
    public static bool IsLoaded
    {
        get
        {
            lock (_gate)
            {
                return _info is not null;
            }
        }
    }

    /// <summary>
    /// Decides what to load, without loading or writing anything: finds libtorch and libLibTorchSharp.so, checks
    /// the host libstdc++ and, when needed, prepares the weak-version copy's content and cache path.
    /// </summary>
    /// <exception cref="CompressionException">MC4001 when something needed is missing or cannot be made to work.</exception>
    internal static TorchNativePlan Plan(TorchNativeEnvironment env)
    {
        var tried = new List<string>();
        var (libTorchDir, source) = FindLibTorch(env, tried);
        var libTorchSharp = FindLibTorchSharp(env, libTorchDir, tried);
        if (libTorchDir is null || libTorchSharp is null)
        {
            throw Failure(env, "TorchSharp's native libraries were not found.", tried, missingLibStdCxx: null);
        }

        var hostLibStdCxx = env.FindHostLibStdCxx();
        if (hostLibStdCxx is null)
        {
            tried.Add("libstdc++.so.6: not mapped into this process and could not be loaded");
            throw Failure(env, "The C++ runtime (libstdc++.so.6) was not found.", tried, missingLibStdCxx: null);
        }

        byte[] original;
        LibStdCxxCheck check;
        try
        {
            original = File.ReadAllBytes(libTorchSharp);
            var image = ElfImage.Read(original);
            var host = ElfImage.Load(hostLibStdCxx);
            check = LibStdCxxCompatibility.Check(image, host.VersionDefinitions);
            if (check.IsCompatible)
            {
                return new TorchNativePlan(libTorchDir, source!, libTorchSharp, hostLibStdCxx, check, null, null);
            }

            if (!check.CanPatch)
            {
                tried.Add($"{libTorchSharp}: needs {string.Join(", ", check.MissingVersions)}, which {hostLibStdCxx} does not define, "
                    + $"for symbols that are used ({string.Join(", ", check.UnexpectedSymbols)}); a weak-version copy would fail at run time, so none was made");
                throw Failure(env, "The host C++ runtime is too old for TorchSharp.", tried, check.MissingVersions);
            }

            var patched = image.WithWeakVersions(check.MissingVersions);
            var path = NativeFileCache.PathFor(CacheRoot(env), LibTorchSharpFileName, patched);
            return new TorchNativePlan(libTorchDir, source!, libTorchSharp, hostLibStdCxx, check, patched, path);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            tried.Add($"reading {libTorchSharp} and {hostLibStdCxx}: {e.Message}");
            throw Failure(env, "The native libraries could not be inspected.", tried, missingLibStdCxx: null);
        }
    }

    /// <summary>The cache folder for patched copies (environment variable, else the XDG cache folder).</summary>
    internal static string CacheRoot(TorchNativeEnvironment env)
    {
        var configured = env.GetVariable(NativeCacheVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return Path.GetFullPath(configured);
        }

        var xdg = env.GetVariable("XDG_CACHE_HOME");
        var root = !string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg)
            ? xdg
            : Path.Combine(env.HomeDirectory ?? Path.GetTempPath(), ".cache");
        return Path.Combine(root, "modelcompression", "native");
    }

    private static TorchNativeInfo Load(TorchNativeEnvironment env)
    {
        var torchSharpVersion = env.TorchSharpVersion;
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64)
        {
            // Elsewhere TorchSharp's own loading applies (the app references a TorchSharp-cpu/cuda package).
            return new TorchNativeInfo(false, null, null, null, null, null, [], false, false, [], env.LibTorchVersion,
                torch.__version__, torchSharpVersion, [$"{RuntimeInformation.RuntimeIdentifier}: TorchSharp's own native loading is used."]);
        }

        var plan = Plan(env);
        var tried = new List<string>();
        var loadPath = plan.LibTorchSharpPath;
        var reused = false;
        if (plan.PatchedContent is not null)
        {
            try
            {
                loadPath = NativeFileCache.Materialize(CacheRoot(env), LibTorchSharpFileName, plan.PatchedContent, out reused);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                tried.Add($"writing the patched copy {plan.PatchedPath}: {e.Message}");
                throw Failure(env, "The patched copy of libLibTorchSharp.so could not be written.", tried, plan.Check.MissingVersions);
            }
        }

        var handles = new Dictionary<string, IntPtr>(StringComparer.Ordinal);
        foreach (var file in LibTorchFiles)
        {
            var path = Path.Combine(plan.LibTorchDirectory, file);
            handles[file] = LoadOrFail(env, path, tried, plan);
        }

        handles[LibTorchSharpFileName] = LoadOrFail(env, loadPath, tried, plan);
        _handles = handles;

        var notes = new List<string>();
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // Someone else set it. The libraries are loaded already, and the loader matches TorchSharp's names
            // against their SONAMEs, so TorchSharp still binds to them.
            notes.Add("TorchSharp's DllImport resolver was already set; relying on the preloaded libraries.");
        }

        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            tried.Add($"torch.InitializeDeviceType(CPU): {Flatten(e)}");
            throw Failure(env, "TorchSharp did not initialise (was TorchSharp used before TorchNativeLoader.EnsureLoaded()?).", tried, plan.Check.MissingVersions);
        }

        VerifyNoForeignLibTorch(env, plan, tried);

        if (plan.PatchedContent is not null)
        {
            notes.Add($"The host libstdc++ lacks {string.Join(", ", plan.Check.MissingVersions)}; loaded a copy of libLibTorchSharp.so with "
                + "those versions marked weak (only unused symbols need them).");
        }

        return new TorchNativeInfo(
            true,
            plan.LibTorchDirectory,
            plan.LibTorchSource,
            plan.LibTorchSharpPath,
            loadPath,
            plan.HostLibStdCxxPath,
            plan.Check.MissingVersions,
            plan.PatchedContent is not null,
            reused,
            plan.Check.SymbolsByMissingVersion.Values.SelectMany(s => s).Distinct(StringComparer.Ordinal).ToList(),
            env.LibTorchVersion,
            torch.__version__,
            torchSharpVersion,
            notes);
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var handles = _handles;
        if (handles is null)
        {
            return IntPtr.Zero;
        }

        var file = libraryName switch
        {
            "LibTorchSharp" or "libLibTorchSharp" or LibTorchSharpFileName => LibTorchSharpFileName,
            "torch_cpu" or "libtorch_cpu" or "libtorch_cpu.so" => "libtorch_cpu.so",
            "torch" or "libtorch" or "libtorch.so" => "libtorch.so",
            "c10" or "libc10" or "libc10.so" => "libc10.so",
            _ => null,
        };
        return file is not null && handles.TryGetValue(file, out var handle) ? handle : IntPtr.Zero;
    }

    private static IntPtr LoadOrFail(TorchNativeEnvironment env, string path, List<string> tried, TorchNativePlan plan)
    {
        try
        {
            return NativeLibrary.Load(path);
        }
        catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
        {
            tried.Add($"loading {path}: {e.Message}");
            throw Failure(env, "A native library failed to load.", tried, plan.Check.MissingVersions);
        }
    }

    private static void VerifyNoForeignLibTorch(TorchNativeEnvironment env, TorchNativePlan plan, List<string> tried)
    {
        var ours = ProcessMaps.RealPath(Path.Combine(plan.LibTorchDirectory, "libtorch_cpu.so"));
        var foreign = ProcessMaps.MappedFilesNamed("libtorch_cpu.so").Where(p => p != ours).ToList();
        if (foreign.Count > 0)
        {
            tried.Add($"after loading {ours}, other libtorch builds are mapped too: {string.Join(", ", foreign)}");
            throw Failure(env, "Two different libtorch builds were loaded into the process.", tried, plan.Check.MissingVersions);
        }
    }

    internal static (string? Dir, string? Source) FindLibTorch(TorchNativeEnvironment env, List<string> tried)
    {
        var configured = env.GetVariable(LibTorchDirVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            // An explicit choice is used alone: silently falling back would hide a wrong setting.
            return HasLibTorch(configured, tried) ? (Path.GetFullPath(configured), LibTorchDirVariable) : (null, null);
        }

        foreach (var dir in AppDirectories(env))
        {
            if (HasLibTorch(dir, tried))
            {
                return (dir, "app folder");
            }
        }

        var packageFolder = Path.Combine(NuGetPackagesRoot(env), LibTorchPackage.PackageId, env.LibTorchVersion);
        var package = Path.Combine(packageFolder, "runtimes", NativeRid, "native");
        if (!HasLibTorch(package, tried))
        {
            return (null, null);
        }

        // Restore (and the tool's fetch) write .nupkg.metadata last: without it the files are an interrupted extraction.
        if (!File.Exists(Path.Combine(packageFolder, ".nupkg.metadata")))
        {
            tried.Add($"{packageFolder}: no .nupkg.metadata (an interrupted extraction; delete the folder and fetch again)");
            return (null, null);
        }

        return (package, PackagesFolderSource);
    }

    private static string? FindLibTorchSharp(TorchNativeEnvironment env, string? libTorchDir, List<string> tried)
    {
        // Lazily: the packages folder is resolved (reading nuget.config) only when the app folder lacks the library.
        IEnumerable<string> Candidates()
        {
            if (!string.IsNullOrWhiteSpace(env.GetVariable(LibTorchDirVariable)) && libTorchDir is not null)
            {
                yield return Path.Combine(libTorchDir, LibTorchSharpFileName);
            }

            foreach (var dir in AppDirectories(env))
            {
                yield return Path.Combine(dir, LibTorchSharpFileName);
            }

            yield return Path.Combine(NuGetPackagesRoot(env), "torchsharp", env.TorchSharpVersion, "runtimes", NativeRid, "native", LibTorchSharpFileName);
        }

        foreach (var candidate in Candidates().Distinct(StringComparer.Ordinal))
        {
            if (File.Exists(candidate))
            {
                return Path.GetFullPath(candidate);
            }

            tried.Add($"{candidate}: not found");
        }

        return null;
    }

    private static IEnumerable<string> AppDirectories(TorchNativeEnvironment env)
    {
        yield return Path.Combine(env.AppBaseDirectory, "runtimes", NativeRid, "native");
        yield return env.AppBaseDirectory;
    }

    internal static string NuGetPackagesRoot(TorchNativeEnvironment env)
    {
        if (env.PackagesRoot?.Invoke() is { Length: > 0 } resolved)
        {
            return resolved;
        }

        var configured = env.GetVariable("NUGET_PACKAGES");
        return !string.IsNullOrWhiteSpace(configured)
            ? configured
            : Path.Combine(env.HomeDirectory ?? "~", ".nuget", "packages");
    }

    private static bool HasLibTorch(string dir, List<string> tried)
    {
        var missing = LibTorchFiles.Where(f => !File.Exists(Path.Combine(dir, f))).ToList();
        if (missing.Count == 0)
        {
            return true;
        }

        tried.Add(Directory.Exists(dir)
            ? $"{dir}: no {string.Join(", ", missing)}"
            : $"{dir}: folder does not exist");
        return false;
    }

    private static CompressionException Failure(TorchNativeEnvironment env, string what, List<string> tried, IReadOnlyList<string>? missingLibStdCxx)
    {
        var todo = new List<string>
        {
            $"run `dotnet compress doctor` (it fetches {LibTorchPackage.PackageId} {env.LibTorchVersion} into the NuGet packages folder, {NuGetPackagesRoot(env)}), or `dotnet restore` in a project that references the package, "
                + $"so that {LibTorchPackage.PackageId} {env.LibTorchVersion} and torchsharp {env.TorchSharpVersion} are there (NUGET_PACKAGES moves the folder)",
            $"or set {LibTorchDirVariable} to a folder holding libtorch {env.LibTorchVersion}'s {string.Join(", ", LibTorchFiles)} (and {LibTorchSharpFileName} if it is not in the NuGet folder)",
        };
        if (missingLibStdCxx is { Count: > 0 })
        {
            todo.Add($"or install a libstdc++ that defines {string.Join(", ", missingLibStdCxx)} (GCC 13 or newer)");
        }

        todo.Add($"set {NativeCacheVariable} to a writable folder if the cache ({CacheRoot(env)}) is not writable");
        var message = $"{what} Tried: {string.Join("; ", tried.Select((t, i) => $"[{i + 1}] {t}"))}. "
            + $"To fix: {string.Join("; ", todo)}.";
        return CompressionException.Error(DiagnosticCodes.TorchNativeLoadFailed, message);
    }

    private static string Flatten(Exception e)
    {
        var parts = new List<string>();
        for (var current = e; current is not null; current = current.InnerException)
        {
            parts.Add($"{current.GetType().Name}: {current.Message}");
        }

        return string.Join(" -> ", parts);
    }
}

/// <summary>What <see cref="TorchNativeLoader.Plan"/> decided.</summary>
/// <param name="LibTorchDirectory">Folder with libc10.so, libtorch_cpu.so, libtorch.so.</param>
/// <param name="LibTorchSource">Which candidate it was.</param>
/// <param name="LibTorchSharpPath">The original libLibTorchSharp.so.</param>
/// <param name="HostLibStdCxxPath">The host libstdc++.</param>
/// <param name="Check">What libLibTorchSharp.so needs that the host lacks.</param>
/// <param name="PatchedContent">The weak-version copy's bytes, when a copy is needed.</param>
/// <param name="PatchedPath">Where that copy goes in the cache.</param>
internal sealed record TorchNativePlan(
    string LibTorchDirectory,
    string LibTorchSource,
    string LibTorchSharpPath,
    string HostLibStdCxxPath,
    LibStdCxxCheck Check,
    byte[]? PatchedContent,
    string? PatchedPath);

/// <summary>The inputs of <see cref="TorchNativeLoader.Plan"/>, replaceable in tests.</summary>
internal sealed class TorchNativeEnvironment
{
    public required Func<string, string?> GetVariable { get; init; }

    public required string AppBaseDirectory { get; init; }

    public required string? HomeDirectory { get; init; }

    public required string LibTorchVersion { get; init; }

    public required string TorchSharpVersion { get; init; }

    public required Func<string?> FindHostLibStdCxx { get; init; }

    /// <summary>The NuGet global packages folder; when null, NUGET_PACKAGES or ~/.nuget/packages.</summary>
    public Func<string?>? PackagesRoot { get; init; }

    /// <summary>This process: real environment, app folder, versions from assembly metadata, the libstdc++ in use.</summary>
    public static TorchNativeEnvironment Current()
    {
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return new TorchNativeEnvironment
        {
            GetVariable = Environment.GetEnvironmentVariable,
            AppBaseDirectory = AppContext.BaseDirectory,
            HomeDirectory = string.IsNullOrEmpty(home) ? null : home,
            LibTorchVersion = Metadata("LibTorchPackageVersion"),
            TorchSharpVersion = Metadata("TorchSharpPackageVersion"),
            FindHostLibStdCxx = FindProcessLibStdCxx,
            // As restore resolves it (NUGET_PACKAGES, then globalPackagesFolder in nuget.config), only when needed:
            // reading the configuration is wasted when libtorch is in the app folder or set by variable.
            PackagesRoot = () => LibTorchPackage.GlobalPackagesFolder(Directory.GetCurrentDirectory()),
        };
    }

    /// <summary>
    /// The libstdc++ this process uses: the one mapped (the .NET runtime links it), else the one the dynamic
    /// loader picks for <c>libstdc++.so.6</c>.
    /// </summary>
    public static string? FindProcessLibStdCxx()
    {
        var mapped = ProcessMaps.MappedFilesNamed("libstdc++.so");
        if (mapped.Count == 0 && NativeLibrary.TryLoad("libstdc++.so.6", out _))
        {
            mapped = ProcessMaps.MappedFilesNamed("libstdc++.so");
        }

        return mapped.Count > 0 ? mapped[0] : null;
    }

    private static string Metadata(string key) =>
        typeof(TorchNativeLoader).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value
        ?? throw new InvalidOperationException($"Assembly metadata '{key}' is missing from {typeof(TorchNativeLoader).Assembly.GetName().Name}.");
}
