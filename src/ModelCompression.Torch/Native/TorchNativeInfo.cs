namespace ModelCompression.Torch.Native;

/// <summary>What <see cref="TorchNativeLoader.EnsureLoaded"/> found and did; shown by <c>dotnet compress doctor</c>.</summary>
/// <param name="Managed">
/// True when the loader chose and loaded the native libraries itself (Linux x64). False on other platforms,
/// where TorchSharp's own loading is used (the app then needs a TorchSharp-cpu/cuda package reference).
/// </param>
/// <param name="LibTorchDirectory">The folder libc10.so, libtorch_cpu.so and libtorch.so were loaded from.</param>
/// <param name="LibTorchSource">Where that folder came from: the environment variable, the app folder or the NuGet packages folder.</param>
/// <param name="LibTorchSharpPath">The libLibTorchSharp.so that was found (never modified).</param>
/// <param name="LoadedLibTorchSharpPath">The libLibTorchSharp.so that was loaded: the one found, or a patched copy in the cache.</param>
/// <param name="HostLibStdCxxPath">The libstdc++ the process uses.</param>
/// <param name="MissingLibStdCxxVersions">Versions libLibTorchSharp.so needs that the host libstdc++ does not define.</param>
/// <param name="PatchApplied">Whether the loaded libLibTorchSharp.so is a copy with those versions marked weak.</param>
/// <param name="PatchedCopyReused">Whether the patched copy was already in the cache (false when it was written now, or no patch).</param>
/// <param name="WeakSymbols">The symbols left unresolved by the patch (known to be unused).</param>
/// <param name="LibTorchPackageVersion">The libtorch package version this build expects.</param>
/// <param name="TorchVersion">The torch version TorchSharp reports (<c>torch.__version__</c>).</param>
/// <param name="TorchSharpVersion">The TorchSharp assembly's version.</param>
/// <param name="Notes">Anything else worth telling (for example that the DllImport resolver was already taken).</param>
public sealed record TorchNativeInfo(
    bool Managed,
    string? LibTorchDirectory,
    string? LibTorchSource,
    string? LibTorchSharpPath,
    string? LoadedLibTorchSharpPath,
    string? HostLibStdCxxPath,
    IReadOnlyList<string> MissingLibStdCxxVersions,
    bool PatchApplied,
    bool PatchedCopyReused,
    IReadOnlyList<string> WeakSymbols,
    string LibTorchPackageVersion,
    string TorchVersion,
    string TorchSharpVersion,
    IReadOnlyList<string> Notes);
