using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace ModelCompression.Build;

/// <summary>
/// Runs one compression recipe by starting the engine (<c>dotnet-compress run</c>) in its own process:
/// libtorch, 600 MB of native code that cannot be unloaded, never loads into an MSBuild node. The engine
/// prints diagnostics in MSBuild's canonical form, so they surface as real errors and warnings with the
/// recipe's file and line.
/// </summary>
public sealed class CompressModel : ToolTask
{
    /// <summary>The recipe file.</summary>
    [Required]
    public string Recipe { get; set; } = string.Empty;

    /// <summary>The engine's entry assembly (dotnet-compress.dll).</summary>
    [Required]
    public string EnginePath { get; set; } = string.Empty;

    /// <summary>Where the model and reports are written.</summary>
    [Required]
    public string OutputDirectory { get; set; } = string.Empty;

    /// <summary>The stage cache folder.</summary>
    [Required]
    public string CacheDirectory { get; set; } = string.Empty;

    /// <summary>Where the engine lists the files the recipe reads, for the next build's up-to-date check.</summary>
    public string? DependencyFile { get; set; }

    /// <summary>The folder holding libtorch's shared libraries; found in <see cref="PackageFolders"/> when not set.</summary>
    public string? LibTorchDirectory { get; set; }

    /// <summary>The NuGet package folders of the build (global packages folder and fallback folders).</summary>
    public string[] PackageFolders { get; set; } = [];

    /// <summary>The libtorch package as "id/version", looked for in <see cref="PackageFolders"/>.</summary>
    public string LibTorchPackage { get; set; } = "libtorch-cpu-linux-x64/2.10.0";

    /// <summary>Report broken gates as warnings instead of errors (the model is still not replaced).</summary>
    public bool GateFailuresAsWarnings { get; set; }

    /// <summary>The dotnet host to run the engine with; defaults to the one running this build.</summary>
    public string? DotnetHost { get; set; }

    private string? _libTorchProblem;

    /// <inheritdoc />
    protected override string ToolName => "dotnet";

    /// <summary>Progress lines show at normal verbosity: training takes minutes and people want to see it move.</summary>
    protected override MessageImportance StandardOutputLoggingImportance => MessageImportance.High;

    /// <inheritdoc />
    protected override string GenerateFullPathToTool() =>
        !string.IsNullOrEmpty(DotnetHost) ? DotnetHost!
        : Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
        : "dotnet";

    /// <inheritdoc />
    protected override bool ValidateParameters()
    {
        // Log every problem, then fail once, so a user fixes them all in one go.
        var valid = true;
        if (!File.Exists(Recipe))
        {
            Log.LogError(null, "MC1005", null, Recipe, 0, 0, 0, 0, "Recipe '{0}' does not exist.", Recipe);
            valid = false;
        }

        if (!File.Exists(EnginePath))
        {
            Log.LogError(null, "MC4003", null, null, 0, 0, 0, 0, "The compression engine '{0}' is missing: the ModelCompression.Build package is incomplete. Clear it from the NuGet packages folder and restore again.", EnginePath);
            valid = false;
        }

        if (LibTorchDirectory is null || !Directory.Exists(LibTorchDirectory))
        {
            Log.LogError(null, "MC4001", null, null, 0, 0, 0, 0, _libTorchProblem ?? $"libtorch folder '{LibTorchDirectory}' (CompressModelLibTorchDirectory) does not exist.");
            valid = false;
        }

        return valid;
    }

    /// <inheritdoc />
    protected override string GenerateCommandLineCommands()
    {
        var builder = new CommandLineBuilder();
        builder.AppendSwitch("exec");
        builder.AppendFileNameIfNotNull(EnginePath);
        builder.AppendSwitch("run");
        builder.AppendFileNameIfNotNull(Recipe);
        builder.AppendSwitchIfNotNull("--output ", OutputDirectory);
        builder.AppendSwitchIfNotNull("--cache ", CacheDirectory);
        builder.AppendSwitchIfNotNull("--dependency-file ", DependencyFile);
        if (GateFailuresAsWarnings)
        {
            builder.AppendSwitch("--gate-failures-as-warnings");
        }

        return builder.ToString();
    }

    /// <inheritdoc />
    public override bool Execute()
    {
        ResolveLibTorchDirectory();
        var variables = new List<string>(EnvironmentVariables ?? []);
        if (!string.IsNullOrEmpty(LibTorchDirectory))
        {
            variables.Add($"MODELCOMPRESSION_LIBTORCH_DIR={LibTorchDirectory}");
        }

        // Plain progress lines, not a redrawn terminal line: MSBuild logs line by line.
        variables.Add("CI=true");
        // ONNX Runtime's telemetry off from the engine process's first instruction (the engine turns it off too).
        variables.Add("ORT_DISABLE_TELEMETRY=1");
        EnvironmentVariables = [.. variables];
        return base.Execute();
    }

    /// <summary>
    /// Unless set, finds libtorch in the build's NuGet package folders, where the package's dependency on it
    /// was restored (the global packages folder or a fallback folder).
    /// </summary>
    private void ResolveLibTorchDirectory()
    {
        if (!string.IsNullOrEmpty(LibTorchDirectory))
        {
            return;
        }

        var candidates = PackageFolders
            .Where(f => !string.IsNullOrWhiteSpace(f))
            .Select(f => Path.Combine(f.Trim(), LibTorchPackage, "runtimes", "linux-x64", "native"))
            .ToList();
        LibTorchDirectory = candidates.FirstOrDefault(Directory.Exists);
        if (LibTorchDirectory is null)
        {
            _libTorchProblem = $"libtorch ({LibTorchPackage}) was not found in the NuGet package folders: {(candidates.Count == 0 ? "(none)" : string.Join(", ", candidates))}. Run 'dotnet restore', or set CompressModelLibTorchDirectory to a folder holding libtorch_cpu.so.";
        }
    }
}
