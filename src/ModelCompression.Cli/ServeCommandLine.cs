using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using ModelCompression.Diagnostics;
using ModelCompression.Serving;

namespace ModelCompression.Cli;

/// <summary>
/// <c>dotnet compress serve MODEL... [--port N] [--host H] [--model-name NAME]... [--tokenizer T] [--fault RULE]...
/// [--max-batch N] [--batch-wait-ms N] [--max-queue N] [--threads N] [--api-key-env VAR]</c>: serves generative model
/// folders (or bare decoders) as an OpenAI-compatible endpoint until Ctrl+C or SIGTERM. Prints the listening URL and
/// one plain line per request; never a body or the key (docs/serve.md).
/// </summary>
internal static class ServeCommandLine
{
    public static Command Command()
    {
        var models = new Argument<string[]>("models") { Description = "Generative model folders (model.onnx, tokenizer.compress.json, generation.json) or decoder .onnx files.", Arity = ArgumentArity.OneOrMore };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: a free one; the printed URL says which).", DefaultValueFactory = _ => 8000 };
        var host = new Option<string>("--host") { Description = "Address to listen on. Anything but loopback is reachable from other machines: set --api-key-env too.", DefaultValueFactory = _ => "127.0.0.1" };
        var names = new Option<string[]>("--model-name") { Description = "The model id requests name, once per model in order (default: the folder's or file's name).", AllowMultipleArgumentsPerToken = false };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "A bare decoder's tokenizer: 'byte' or a tokenizer.compress.json (default: the one beside the .onnx)." };
        var faults = new Option<string[]>("--fault") { Description = "Inject a fault for tests, KIND[:VALUE]@WHEN: 429[:SECONDS], 500, slow:DELAY, drop[:BYTES], malformed, unparsable[:TEXT] or empty, @first:K, @request:LIST or @always (docs/serve.md).", AllowMultipleArgumentsPerToken = false };
        var maxBatch = new Option<int>("--max-batch") { Description = "Most sequences generated together in one batch.", DefaultValueFactory = _ => 8 };
        var batchWait = new Option<int>("--batch-wait-ms") { Description = "Milliseconds a batch waits for more requests before it starts (a full batch starts at once).", DefaultValueFactory = _ => 0 };
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests that may wait per model; more get 503 with Retry-After.", DefaultValueFactory = _ => 256 };
        var threads = CompressCommand.ThreadsOption();
        var keyVariable = new Option<string?>("--api-key-env") { Description = "Name of an environment variable holding an API key: requests must then send 'Authorization: Bearer <key>'." };
        var command = new Command("serve", "Serve generative ONNX models as an OpenAI-compatible endpoint (chat and text completions, streaming, logprobs, batching).")
        {
            models, port, host, names, tokenizer, faults, maxBatch, batchWait, maxQueue, threads, keyVariable,
        };
        command.SetAction(parse => CompressCommand.Guard(() =>
        {
            // Checked here rather than in validators, which do not see the options' defaults.
            var variable = parse.GetValue(keyVariable);
            var key = variable is null ? null : Environment.GetEnvironmentVariable(variable);
            var given = parse.GetValue(names) ?? [];
            var problems = new List<string>();
            if (parse.GetValue(port) is < 0 or > 65535)
            {
                problems.Add("--port must be from 0 to 65535.");
            }

            if (parse.GetValue(maxBatch) < 1 || parse.GetValue(maxQueue) < 1 || parse.GetValue(batchWait) < 0)
            {
                problems.Add("--max-batch and --max-queue must be at least 1, --batch-wait-ms at least 0.");
            }

            if (given.Length > parse.GetValue(models)!.Length)
            {
                problems.Add("--model-name is given more often than there are models.");
            }

            if (variable is not null && string.IsNullOrEmpty(key))
            {
                problems.Add($"--api-key-env names '{variable}', which is not set or empty.");
            }

            if (problems.Count > 0)
            {
                problems.ForEach(p => Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, p)));
                return ExitCodes.Usage;
            }

            var sources = parse.GetValue(models)!.Select((path, i) => new ServedModelSource(path) { Name = i < given.Length ? given[i] : null, Tokenizer = parse.GetValue(tokenizer) }).ToList();
            var options = new ServeOptions
            {
                Models = sources,
                Host = parse.GetValue(host)!,
                Port = parse.GetValue(port),
                MaxBatch = parse.GetValue(maxBatch),
                BatchWait = TimeSpan.FromMilliseconds(parse.GetValue(batchWait)),
                MaxQueuedRequests = parse.GetValue(maxQueue),
                Threads = parse.GetValue(threads),
                ApiKey = key,
                Faults = [.. (parse.GetValue(faults) ?? []).Select(FaultRule.Parse)],
                Log = Console.WriteLine,
            };
            using var stop = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                stop.Cancel();
            };
            using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                stop.Cancel();
            });
            var server = OpenAiServer.Start(options);
            foreach (var fault in options.Faults)
            {
                Console.WriteLine($"fault injection on: {fault}");
            }

            Console.WriteLine($"Serving {string.Join(", ", server.ModelIds)} at {server.OpenAiEndpoint} (the OpenAI base URL); statistics at {new Uri(server.BaseAddress, "v1/compress/stats")}. Ctrl+C stops.");
            stop.Token.WaitHandle.WaitOne();
            var requests = server.Stats.Requests;
            server.Dispose();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Stopped after {requests} requests."));
            return ExitCodes.Ok;
        }));
        return command;
    }
}
