using System.Diagnostics;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;

namespace ModelCompression.Serving;

/// <summary>
/// Queues a model's generation requests and runs them in batches: a worker takes the oldest job and every queued job
/// with the same <see cref="GenerationJob.Key"/> (in arrival order, up to <see cref="ServeOptions.MaxBatch"/>
/// sequences), waits up to <see cref="ServeOptions.BatchWait"/> for a full batch, and runs them in one
/// <see cref="GenerativeModel.Generate"/> call. Requests that arrive while a batch runs wait for the next. The
/// generator gives each row what it would give alone (left padding, per-sequence random streams), so batching never
/// changes an answer at temperature 0. Workers are threads of their own: generation is CPU work that blocks.
/// </summary>
internal sealed class BatchScheduler : IDisposable
{
    private readonly GenerativeModel _model;
    private readonly ServeOptions _options;
    private readonly ServerCounters _counters;
    private readonly LinkedList<GenerationJob> _queue = new();
    private readonly object _gate = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly Thread[] _workers;
    private bool _stopped;

    public BatchScheduler(GenerativeModel model, ServeOptions options, ServerCounters counters)
    {
        _model = model;
        _options = options;
        _counters = counters;
        _workers = [.. Enumerable.Range(0, Math.Max(1, options.ConcurrentBatches)).Select(i => new Thread(Work) { IsBackground = true, Name = $"serve batch {i}" })];
        foreach (var worker in _workers)
        {
            worker.Start();
        }
    }

    /// <summary>Queues <paramref name="job"/>; a full queue is 503 (the caller counts it), a stopping server 503 too.</summary>
    public void Submit(GenerationJob job)
    {
        lock (_gate)
        {
            if (_stopped)
            {
                throw new ServeRequestException(503, "server_stopping", "The server is stopping.", type: "server_error");
            }

            if (_queue.Count >= _options.MaxQueuedRequests)
            {
                _counters.Rejected();
                throw new ServeRequestException(503, "server_overloaded", $"The server has {_queue.Count} requests waiting for this model, its limit; retry later.", type: "server_error");
            }

            job.QueuedAt = Stopwatch.GetTimestamp();
            _queue.AddLast(job);
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Stops taking jobs, fails the queued ones, cancels running batches and waits for the workers.</summary>
    public void Dispose()
    {
        List<GenerationJob> waiting;
        lock (_gate)
        {
            if (_stopped)
            {
                return;
            }

            _stopped = true;
            waiting = [.. _queue];
            _queue.Clear();
            Monitor.PulseAll(_gate);
        }

        _stopping.Cancel();
        waiting.ForEach(j => j.Fail(new ServeRequestException(503, "server_stopping", "The server is stopping.", type: "server_error")));
        foreach (var worker in _workers)
        {
            worker.Join();
        }

        _stopping.Dispose();
    }

    private void Work()
    {
        while (Take() is { } batch)
        {
            Run(batch);
        }
    }

    /// <summary>The next batch, or null once stopped.</summary>
    private List<GenerationJob>? Take()
    {
        lock (_gate)
        {
            while (true)
            {
                if (_stopped)
                {
                    return null;
                }

                DropAbandoned();
                if (_queue.First is not { } first)
                {
                    Monitor.Wait(_gate);
                    continue;
                }

                var batch = Compatible(first.Value);
                var wait = _options.BatchWait - Stopwatch.GetElapsedTime(first.Value.QueuedAt);
                if (batch.Sum(j => j.Sequences) >= _options.MaxBatch || wait <= TimeSpan.Zero)
                {
                    batch.ForEach(j => _queue.Remove(j));
                    return batch;
                }

                Monitor.Wait(_gate, wait);
            }
        }
    }

    /// <summary><paramref name="first"/> and the queued jobs after it with its key, while they fit in a batch.</summary>
    private List<GenerationJob> Compatible(GenerationJob first)
    {
        var batch = new List<GenerationJob> { first };
        var sequences = first.Sequences;
        for (var node = _queue.First!.Next; node is not null && sequences < _options.MaxBatch; node = node.Next)
        {
            var job = node.Value;
            if (job.Key == first.Key && sequences + job.Sequences <= _options.MaxBatch)
            {
                batch.Add(job);
                sequences += job.Sequences;
            }
        }

        return batch;
    }

    private void DropAbandoned()
    {
        for (var node = _queue.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Aborted.IsCancellationRequested)
            {
                node.Value.Fail(new OperationCanceledException(node.Value.Aborted));
                _queue.Remove(node);
            }

            node = next;
        }
    }

    private void Run(List<GenerationJob> batch)
    {
        // Which job each of the batch's prompts belongs to, and where that job's prompts start.
        var owner = new List<int>();
        var offsets = new int[batch.Count];
        for (var j = 0; j < batch.Count; j++)
        {
            offsets[j] = owner.Count;
            owner.AddRange(Enumerable.Repeat(j, batch[j].Prompts.Count));
        }

        // The batch stops early only when every client in it has gone away, or the server stops.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        var gone = 0;
        var registrations = batch.Select(j => j.Aborted.Register(() =>
        {
            if (Interlocked.Increment(ref gone) == batch.Count)
            {
                cancel.Cancel();
            }
        })).ToList();
        try
        {
            _counters.Batch(batch.Count, batch.Sum(j => j.Sequences));
            var options = batch[0].Options with
            {
                TopLogprobs = batch.Max(j => j.Options.TopLogprobs),
                BatchSize = _options.MaxBatch,
                OnToken = token =>
                {
                    var j = owner[token.PromptIndex];
                    batch[j].Token(Rebase(token, offsets[j]));
                },
            };
            var sequences = _model.Generate([.. batch.SelectMany(j => j.Prompts)], options, cancel.Token);
            for (var j = 0; j < batch.Count; j++)
            {
                var job = j;
                batch[j].Complete([.. sequences.Where(s => owner[s.PromptIndex] == job).Select(s => s with { PromptIndex = s.PromptIndex - offsets[job] })]);
            }
        }
        catch (CompressionException e) when (e.Diagnostics.Any(d => d.Code is DiagnosticCodes.GenerationPromptInvalid or DiagnosticCodes.GenerationPromptTooLong))
        {
            var failure = new ServeRequestException(400, e.Diagnostics[0].Code, e.Diagnostics[0].Message, "prompt");
            batch.ForEach(j => j.Fail(failure));
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            batch.ForEach(j => j.Fail(new ServeRequestException(503, "server_stopping", "The server is stopping.", type: "server_error")));
        }
        catch (Exception e)
        {
            batch.ForEach(j => j.Fail(e));
        }
        finally
        {
            registrations.ForEach(r => r.Dispose());
        }
    }

    private static GeneratedToken Rebase(GeneratedToken token, int offset) => offset == 0 ? token : token with
    {
        PromptIndex = token.PromptIndex - offset,
        Finished = token.Finished is { } finished ? finished with { PromptIndex = finished.PromptIndex - offset } : null,
    };
}
