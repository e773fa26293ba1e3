using System.Diagnostics;
using System.Text.RegularExpressions;
using Azure.Storage.Blobs;

namespace ModelCompression.Cache.Tests;

/// <summary>
/// Azurite's blob service (the npm package <c>azurite</c>, a real Azure Storage emulator), started by the tests on
/// 127.0.0.1 at a port the system picks, keeping blobs in memory, and stopped by them. build/test.sh installs it into
/// <c>.tools/azurite</c>; <c>MODELCOMPRESSION_AZURITE</c> may name another <c>azurite-blob</c>.
/// </summary>
public sealed partial class Azurite : IDisposable
{
    /// <summary>Azurite's well-known development account and key (published in its documentation; not a secret).</summary>
    public const string Account = "devstoreaccount1";

    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private readonly Process _process;

    public Azurite()
    {
        var start = new ProcessStartInfo(Executable())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // --skipApiVersionCheck: the SDK may speak a newer service version than the emulator knows; the calls it makes are old ones.
        foreach (var argument in new[] { "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent" })
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start)!;
        var listening = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new System.Text.StringBuilder();
        _process.OutputDataReceived += (_, e) =>
        {
            lock (log)
            {
                log.AppendLine(e.Data);
            }

            if (e.Data is { } line && ListeningLine().Match(line) is { Success: true } match)
            {
                listening.TrySetResult(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            lock (log)
            {
                log.AppendLine(e.Data);
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        if (!listening.Task.Wait(TimeSpan.FromSeconds(60)))
        {
            Stop();
            throw new InvalidOperationException($"Azurite did not start listening within 60 s:\n{log}");
        }

        Port = listening.Task.Result;
    }

    public int Port { get; }

    /// <summary>A connection string to this instance (holding the well-known key, which the secrecy tests look for).</summary>
    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={Account};AccountKey={AccountKey};BlobEndpoint=http://127.0.0.1:{Port}/{Account};";

    public BlobContainerClient Container(string name)
    {
        var container = new BlobContainerClient(ConnectionString, name);
        container.CreateIfNotExists();
        return container;
    }

    /// <summary>Whether the emulator is still running.</summary>
    public bool Running => !_process.HasExited;

    public void Stop()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
    }

    public void Dispose()
    {
        Stop();
        _process.Dispose();
    }

    /// <summary>azurite-blob: MODELCOMPRESSION_AZURITE, else build/test.sh's install under .tools/azurite, else on PATH.</summary>
    private static string Executable()
    {
        string[] candidates =
        [
            Environment.GetEnvironmentVariable("MODELCOMPRESSION_AZURITE") ?? string.Empty,
            Path.Join(Repo.Root, ".tools", "azurite", "node_modules", ".bin", "azurite-blob"),
            .. (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator).Select(folder => Path.Join(folder, "azurite-blob")),
        ];
        return candidates.FirstOrDefault(c => c.Length > 0 && File.Exists(c))
            ?? throw new InvalidOperationException(
                "Azurite is not installed. build/test.sh installs it (npm install --prefix .tools/azurite azurite@3.37.0, which needs Node.js and npm); "
                + "or set MODELCOMPRESSION_AZURITE to an azurite-blob executable.");
    }

    [GeneratedRegex(@"listens on https?://127\.0\.0\.1:(\d+)")]
    private static partial Regex ListeningLine();
}
