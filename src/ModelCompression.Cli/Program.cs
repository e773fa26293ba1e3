using System.CommandLine;
using ModelCompression.Cli;
using ModelCompression.Diagnostics;
using ModelCompression.Gates;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Torch.Native;

// Before anything can start ONNX Runtime: a build tool writes nothing to the user's home.
ModelCompression.Inference.OnnxRuntimeEnvironment.EnsureTelemetryOff();
return CompressCommand.Run(args);

namespace ModelCompression.Cli
{
    /// <summary>Exit codes of dotnet-compress.</summary>
    internal static class ExitCodes
    {
        public const int Ok = 0;
        public const int Error = 1;
        public const int Usage = 2;
        public const int GateFailed = 3;
    }

    /// <summary>The `dotnet compress` command line: a thin shell over the engine.</summary>
    internal static class CompressCommand
    {
        public static int Run(string[] args)
        {
            var root = new RootCommand("Distill, prune, factorize and quantize ONNX models, with accuracy gates.");
            root.Add(RunCommand());
            root.Add(DoctorCommand());
            root.Add(OptionsCommand());
            root.Add(BaselineCommand());
            root.Add(InspectCommand());
            root.Add(SchemaCommand());
            var parse = root.Parse(args);
            if (parse.Errors.Count > 0)
            {
                foreach (var error in parse.Errors)
                {
                    Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, error.Message));
                }

                Console.Error.WriteLine("Run 'dotnet compress --help' for usage.");
                return ExitCodes.Usage;
            }

            return parse.Invoke();
        }

        private static Command RunCommand()
        {
            var recipe = new Argument<FileInfo>("recipe") { Description = "The recipe file (YAML)." };
            var cache = new Option<DirectoryInfo?>("--cache") { Description = "Cache folder for stage results (default: .compress/ next to the recipe)." };
            var output = new Option<DirectoryInfo?>("--output", "-o") { Description = "Folder for the model and reports (default: the recipe's folder)." };
            var dependencies = new Option<FileInfo?>("--dependency-file") { Description = "Write the list of files the recipe reads here, one per line (for incremental builds)." };
            var gatesAsWarnings = new Option<bool>("--gate-failures-as-warnings") { Description = "Report broken gates as warnings and exit 0 (the model is still not replaced)." };
            var threads = ThreadsOption();
            var command = new Command("run", "Run a recipe: train, compress, evaluate, check the gates.") { recipe, cache, output, dependencies, gatesAsWarnings, threads };
            command.SetAction(parse => Guard(() => RunRecipe(
                parse.GetValue(recipe)!.FullName,
                parse.GetValue(cache)?.FullName,
                parse.GetValue(output)?.FullName,
                parse.GetValue(dependencies)?.FullName,
                parse.GetValue(gatesAsWarnings),
                parse.GetValue(threads))));
            return command;
        }

        private static Option<int> ThreadsOption()
        {
            var threads = new Option<int>("--threads")
            {
                Description = "Threads for libtorch and ONNX Runtime (overrides the recipe's 'threads'; default: the CPUs this process may use).",
            };
            threads.CustomParser = result =>
            {
                // A parser rather than a validator: reading the value of "--threads x" in a validator throws instead of reporting.
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : string.Empty;
                if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value) && value <= Recipe.MaxThreads)
                {
                    return value;
                }

                result.AddError($"--threads must be a whole number from 0 (automatic) to {Recipe.MaxThreads}, not '{text}'.");
                return 0;
            };
            return threads;
        }

        private static Command BaselineCommand()
        {
            var recipe = new Argument<FileInfo>("recipe") { Description = "The recipe file (YAML)." };
            var cache = new Option<DirectoryInfo?>("--cache") { Description = "Cache folder for stage results (default: .compress/ next to the recipe)." };
            var output = new Option<DirectoryInfo?>("--output", "-o") { Description = "Folder for the model and reports (default: the recipe's folder)." };
            var accept = new Command("accept", "Run the recipe (from the cache when nothing changed) and write its final model's evaluation as the baseline that 'baseline.' gates compare with; commit the file.") { recipe, cache, output };
            accept.SetAction(parse => Guard(() =>
            {
                var loaded = RecipeLoader.Load(parse.GetValue(recipe)!.FullName);
                var reporter = new ConsoleReporter(Console.Out, Console.Error, ConsoleReporter.IsInteractive);
                var result = CompressionPipeline.Run(
                    loaded,
                    new PipelineOptions(parse.GetValue(cache)?.FullName ?? Path.Combine(loaded.Directory, ".compress"), parse.GetValue(output)?.FullName ?? loaded.Directory, reporter));
                var final = result.Stages[^1].Evaluation;
                new BaselineFile(BaselineFile.CurrentSchemaVersion, DateTimeOffset.UtcNow, result.DataHash, final).Save(loaded.Baseline);
                Console.WriteLine($"Accepted {final.Name} (accuracy {final.Accuracy.ToString("P2", System.Globalization.CultureInfo.InvariantCulture)} on {final.Samples} samples) as the baseline: {loaded.Baseline}");
                return ExitCodes.Ok;
            }));
            return new Command("baseline", "Manage the committed baseline that 'baseline.' gates compare with.") { accept };
        }

        private static Command DoctorCommand()
        {
            var command = new Command("doctor", "Check that the engine's native parts (libtorch, TorchSharp, ONNX Runtime) load here.");
            command.SetAction(_ => Guard(() =>
            {
                var info = TorchNativeLoader.EnsureLoaded();
                Console.WriteLine($"TorchSharp          {info.TorchSharpVersion} (torch {info.TorchVersion})");
                Console.WriteLine($"libtorch            {info.LibTorchDirectory ?? "(TorchSharp's own loading)"}{(info.LibTorchSource is null ? string.Empty : $"  [{info.LibTorchSource}]")}");
                Console.WriteLine($"libLibTorchSharp    {info.LoadedLibTorchSharpPath ?? info.LibTorchSharpPath ?? "(TorchSharp's own loading)"}");
                Console.WriteLine($"host libstdc++      {info.HostLibStdCxxPath ?? "(not found)"}");
                Console.WriteLine(info.PatchApplied
                    ? $"compatibility patch applied: {string.Join(", ", info.MissingLibStdCxxVersions)} marked weak (only {string.Join(", ", info.WeakSymbols)} needs it){(info.PatchedCopyReused ? ", cached copy reused" : ", copy written now")}"
                    : "compatibility patch not needed: the host libstdc++ has every version TorchSharp needs");
                foreach (var note in info.Notes)
                {
                    Console.WriteLine($"note: {note}");
                }

                Console.WriteLine($"ONNX Runtime        {Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString()}");
                var budget = Threading.EngineThreads.Budget;
                Console.WriteLine($"threads             {budget.Threads}  [{budget.Source}; .NET ProcessorCount {Environment.ProcessorCount}; libtorch {TorchSharp.torch.get_num_threads()} intra-op, {TorchSharp.torch.get_num_interop_threads()} inter-op]");
                return ExitCodes.Ok;
            }));
            return command;
        }

        private static Command InspectCommand()
        {
            var model = new Argument<FileInfo>("model") { Description = "An ONNX model." };
            var command = new Command("inspect", "List the values inside an ONNX model with their operators and shapes: the names a recipe's 'hints' and 'exclude' take.") { model };
            command.SetAction(parse => Guard(() =>
            {
                var path = parse.GetValue(model)!.FullName;
                Console.Write(Inference.ModelInspector.Markdown(Inference.ModelInspector.Inspect(path), path));
                return ExitCodes.Ok;
            }));
            return command;
        }

        private static Command SchemaCommand()
        {
            var command = new Command("schema", "Print the JSON Schema of recipe files, for editors (e.g. '# yaml-language-server: $schema=recipe.schema.json' at the top of a recipe).");
            command.SetAction(_ =>
            {
                Console.WriteLine(RecipeSchema.JsonSchema());
                return ExitCodes.Ok;
            });
            return command;
        }

        private static Command OptionsCommand()
        {
            var command = new Command("options", "List every recipe option of every stage and built-in student architecture, with defaults.");
            command.SetAction(_ =>
            {
                Console.Write(RecipeSchema.Markdown());
                return ExitCodes.Ok;
            });
            return command;
        }

        private static int RunRecipe(string recipePath, string? cacheDirectory, string? outputDirectory, string? dependencyFile, bool gateFailuresAsWarnings, int threads)
        {
            var recipe = RecipeLoader.Load(recipePath);
            if (dependencyFile is not null)
            {
                AtomicFile.WriteAllText(dependencyFile, string.Join('\n', recipe.InputFiles()) + "\n");
            }

            var reporter = new ConsoleReporter(Console.Out, Console.Error, ConsoleReporter.IsInteractive);
            var options = new PipelineOptions(
                cacheDirectory ?? Path.Combine(recipe.Directory, ".compress"),
                outputDirectory ?? recipe.Directory,
                reporter) { Threads = threads };
            using var cancel = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                cancel.Cancel();
            };
            var result = CompressionPipeline.Run(recipe, options, cancel.Token);
            Console.WriteLine();
            Console.Write(Reports.ReportWriter.Markdown(result));
            foreach (var failure in GateEvaluator.Failures(recipe.Path, result.Gates))
            {
                Console.Error.WriteLine(gateFailuresAsWarnings ? failure with { Severity = DiagnosticSeverity.Warning } : failure);
            }

            if (result.OutputModel is not null)
            {
                Console.WriteLine($"Wrote {result.OutputModel}");
            }
            else
            {
                Console.WriteLine($"A gate failed: {recipe.Outputs.Model} was not replaced.");
            }

            return result.GatesPassed || gateFailuresAsWarnings ? ExitCodes.Ok : ExitCodes.GateFailed;
        }

        /// <summary>Turns engine failures into diagnostics and exit codes; never a raw stack trace for user errors.</summary>
        private static int Guard(Func<int> action)
        {
            try
            {
                return action();
            }
            catch (CompressionException e)
            {
                foreach (var diagnostic in e.Diagnostics)
                {
                    Console.Error.WriteLine(diagnostic);
                }

                return ExitCodes.Error;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("Cancelled.");
                return ExitCodes.Error;
            }
            catch (Exception e)
            {
                Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.Internal, $"Internal error ({e.GetType().Name}): {e.Message}. Please report it with the details below."));
                Console.Error.WriteLine(e.ToString());
                return ExitCodes.Error;
            }
        }
    }
}
