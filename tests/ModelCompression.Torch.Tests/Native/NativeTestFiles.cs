using System.Security.Cryptography;
using ModelCompression.Torch.Native;

namespace ModelCompression.Torch.Tests.Native;

/// <summary>Real files the native tests work on, and temp folders they clean up.</summary>
internal static class NativeTestFiles
{
    /// <summary>The libLibTorchSharp.so the loader would use in this process (the test bin's, or the NuGet package's).</summary>
    public static string LibTorchSharp() => TorchNativeLoader.Plan(TorchNativeEnvironment.Current()).LibTorchSharpPath;

    /// <summary>The libstdc++ this process uses.</summary>
    public static string HostLibStdCxx() =>
        TorchNativeEnvironment.FindProcessLibStdCxx() ?? throw new InvalidOperationException("No libstdc++ in this process.");

    public static string Sha256(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    public static TempDir NewTempDir() => new();

    /// <summary>A fresh folder under the temp path, deleted on dispose.</summary>
    public sealed class TempDir : IDisposable
    {
        public TempDir()
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mc-native-tests", Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(Path);
        }

        public string Path { get; }

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
