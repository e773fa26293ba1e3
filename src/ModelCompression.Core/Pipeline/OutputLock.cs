using System.Diagnostics;
using ModelCompression.Common;
using ModelCompression.Diagnostics;

namespace ModelCompression.Pipeline;

/// <summary>
/// An exclusive lock on one recipe's outputs, held by an open file: two builds of the same recipe take turns
/// instead of racing. The operating system releases it if the process dies. The file is left in place (in the
/// cache, see <see cref="ArtifactCache.LockFile"/>): deleting it on close would let a waiter lock the old, unlinked
/// file while a newcomer locks a new one.
/// </summary>
internal sealed class OutputLock : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(30);
    private readonly FileStream _stream;

    private OutputLock(FileStream stream) => _stream = stream;

    public static OutputLock Acquire(string path, IPipelineReporter reporter, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var clock = Stopwatch.StartNew();
        var told = false;
        while (true)
        {
            try
            {
                return new OutputLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (IOException) when (clock.Elapsed < Timeout)
            {
                if (!told)
                {
                    reporter.Info($"Waiting for another run of the same recipe to finish (lock {path})");
                    told = true;
                }

                Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).Wait(cancellationToken);
            }
            catch (IOException e)
            {
                throw CompressionException.Error(DiagnosticCodes.LockTimeout, $"Another run held the lock {path} for over {Timeout.TotalMinutes} minutes: {e.Message}", path);
            }
        }
    }

    public void Dispose() => _stream.Dispose();
}
