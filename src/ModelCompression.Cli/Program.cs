using System.CommandLine;
using ModelCompression.Cli;
using ModelCompression.Common;
using ModelCompression.Diagnostics;
using ModelCompression.Gates;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Torch.Native;

// Before anything can start ONNX Runtime: a build tool writes nothing to the user's home. Only the variable: loading
// ONNX Runtime here would cost a run whose every result is cached most of its time.
ModelCompression.Inference.OnnxRuntimeEnvironment.EnsureOptOutVariable();
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
            root.Add(TeacherCommand.Create());
            root.Add(CacheCommand.Create());
            root.Add(ServeCommandLine.Command());
            CommandLineUsage.Configure(root);
            var parse = root.Parse(args);
            var problems = CommandLineUsage.Problems(parse);
            if (problems.Count > 0)
            {
                foreach (var problem in problems)
                {
                    Console.Error.WriteLine(Diagnostic.Error(DiagnosticCodes.UsageError, problem));
                }

                Console.Error.WriteLine("Run 'dotnet compress --help' for usage.");
                return ExitCodes.Usage;
            }

            return parse.Invoke();
        }

        private static Command RunCommand()
        {
            var recipe = new Argument<FileInfo?>("recipe") { Description = "The recipe file (YAML).", Arity = ArgumentArity.ZeroOrOne };
            var single = new RecipeRunOptions();
            var recipes = new Option<FileInfo?>("--recipes")
            {
                Description = "Run several recipes in this one process: a file with one recipe per line, each with its own options as after 'run' "
                    + "(recipe.yaml --output DIR --cache DIR --dependency-file FILE --stamp-file FILE). --cache here is the default for lines without one.",
            };
            var gatesAsWarnings = new Option<bool>("--gate-failures-as-warnings") { Description = "Report broken gates as warnings and exit 0 (the model is still not replaced)." };
            var threads = ThreadsOption();
            var json = new Option<bool>("--json")
            {
                Description = "Write the result to stdout as one JSON document (the run's report.json under 'report', its exit code and diagnostics; "
                    + "with --recipes, every recipe's); progress and messages go to stderr.",
            };
            var quiet = new Option<bool>("--quiet", "-q") { Description = "Write only errors, warnings and one line per recipe with its result." };
            var provider = ExecutionProviderCommandLine.Option("Where ONNX Runtime runs the teacher: cpu or cuda (overrides the recipe's 'execution_provider'; default cpu).");
            var command = new Command("run", "Run a recipe: train, compress, evaluate, check the gates.") { recipe, single.Cache, single.Output, single.DependencyFile, single.StampFile, recipes, gatesAsWarnings, threads, json, quiet, provider };
            foreach (var option in single.Remote.All)
            {
                // With --recipes, the command's remote cache is the default of lines that set none.
                command.Add(option);
            }

            command.Validators.Add(result =>
            {
                var hasList = result.GetResult(recipes) is not null;
                if (hasList == (result.GetValue(recipe) is not null))
                {
                    result.AddError("Give either one recipe or --recipes with a list of them.");
                }
                else if (hasList && new Option[] { single.Output, single.DependencyFile, single.StampFile }.FirstOrDefault(o => result.GetResult(o) is not null) is { } perRecipe)
                {
                    result.AddError($"{perRecipe.Name} belongs to each recipe's line of the --recipes file, not to the command.");
                }
            });
            command.SetAction(parse =>
            {
                var warnings = parse.GetValue(gatesAsWarnings);
                var output = new RunOutput(parse.GetValue(json), parse.GetValue(quiet));
                using var cancel = CancelOnCtrlC();
                if (parse.GetValue(recipes) is { } list)
                {
                    var code = Guard(() => RecipeList.Read(list.FullName, parse.GetValue(single.Cache)?.FullName, single.Remote.Bind(parse)) is { } runs
                        ? RunRecipes(runs, warnings, parse.GetValue(threads), output, cancel.Token, parse.GetValue(provider))
                        : ExitCodes.Usage);
                    // A list that could not be read ran nothing: no document, as for any usage error.
                    if (code != ExitCodes.Usage)
                    {
                        output.WriteDocument(list: true, code);
                    }

                    return code;
                }

                var exitCode = TrackedRun(single.Bind(parse, parse.GetValue(recipe)!), warnings, parse.GetValue(threads), output, cancel.Token, parse.GetValue(provider));
                output.WriteDocument(list: false, exitCode);
                return exitCode;
            });
            return command;
        }

        /// <summary>The --threads option, also read on each line of a --recipes file.</summary>
        internal static Option<int> ThreadsOption()
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
            var cache = new Option<DirectoryInfo?>("--cache") { Description = "Cache folder for stage results (default: one per recipe under $XDG_CACHE_HOME/modelcompression, else ~/.cache/modelcompression)." };
            var output = new Option<DirectoryInfo?>("--output", "-o") { Description = "Folder for the model and reports (default: the recipe's folder)." };
            var accept = new Command("accept", "Run the recipe (from the cache when nothing changed) and write its final model's evaluation as the baseline that 'baseline.' gates compare with; commit the file.") { recipe, cache, output };
            accept.SetAction(parse => Guard(() =>
            {
                var loaded = RecipeLoader.Load(parse.GetValue(recipe)!.FullName);
                FirstUse.EnsureLibTorch(CancellationToken.None);
                var reporter = new ConsoleReporter(Console.Out, Console.Error, ConsoleReporter.IsInteractive);
                var result = CompressionRun.Run(
                    loaded,
                    new PipelineOptions(parse.GetValue(cache)?.FullName ?? ArtifactCache.DefaultRoot(loaded.Path), parse.GetValue(output)?.FullName ?? loaded.Directory, reporter));
                var final = result.Stages[^1].Evaluation;
                new BaselineFile(BaselineFile.CurrentSchemaVersion, DateTimeOffset.UtcNow, result.DataHash, final).Save(loaded.Baseline);
                Console.WriteLine($"Accepted {final.Name} ({Headline.Of(loaded, final, Headline.Percent)} on {final.Samples} samples) as the baseline: {loaded.Baseline}");
                return ExitCodes.Ok;
            }));
            return new Command("baseline", "Manage the committed baseline that 'baseline.' gates compare with.") { accept };
        }

        private static Command DoctorCommand()
        {
            var provider = ExecutionProviderCommandLine.Option("Also check this execution provider (cuda: ONNX Runtime's GPU build, the NVIDIA driver, CUDA and cuDNN libraries, a GPU).");
            var command = new Command("doctor", "Check that the engine's native parts (libtorch, TorchSharp, ONNX Runtime) load here.") { provider };
            command.SetAction(parse => Guard(() =>
            {
                var libtorch = FirstUse.EnsureLibTorch(CancellationToken.None);
                var info = TorchNativeLoader.EnsureLoaded();
                Console.WriteLine($"TorchSharp          {info.TorchSharpVersion} (torch {info.TorchVersion})");
                Console.WriteLine($"libtorch            {info.LibTorchDirectory ?? "(TorchSharp's own loading)"}{(info.LibTorchSource is null ? string.Empty : $"  [{info.LibTorchSource}]")}");
                Console.WriteLine($"libtorch package    {FirstUse.Describe(libtorch)}");
                Console.WriteLine($"libLibTorchSharp    {info.LoadedLibTorchSharpPath ?? info.LibTorchSharpPath ?? "(TorchSharp's own loading)"}");
                Console.WriteLine($"host libstdc++      {info.HostLibStdCxxPath ?? "(not found)"}");
                Console.WriteLine(info.PatchApplied
                    ? $"compatibility patch applied: {string.Join(", ", info.MissingLibStdCxxVersions)} marked weak (only {string.Join(", ", info.WeakSymbols)} needs it){(info.PatchedCopyReused ? ", cached copy reused" : ", copy written now")}"
                    : "compatibility patch not needed: the host libstdc++ has every version TorchSharp needs");
                foreach (var note in info.Notes)
                {
                    Console.WriteLine($"note: {note}");
                }

                ExecutionProviderCommandLine.Doctor(parse.GetValue(provider), Console.Out);
                Console.WriteLine($"ONNX Runtime        {Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString()}");
                var budget = Threading.EngineThreads.Budget;
                Console.WriteLine($"threads             {budget.Threads}  [{budget.Source}; .NET ProcessorCount {Environment.ProcessorCount}; libtorch {TorchSharp.torch.get_num_threads()} intra-op, {TorchSharp.torch.get_num_interop_threads()} inter-op]");
                Console.WriteLine($"OpenMP wait policy  {Threading.OpenMpWaitPolicy.ReadNative(Threading.OpenMpWaitPolicy.Variable) ?? "(libgomp's default: spin, then sleep)"}");
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

        /// <summary>Stops the running recipe (and those after it) on Ctrl+C, letting it clean up.</summary>
        private static CancellationTokenSource CancelOnCtrlC()
        {
            var cancel = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) =>
            {
                e.Cancel = true;
                cancel.Cancel();
            };
            return cancel;
        }

        /// <summary>
        /// Checks every recipe first and runs none when any has errors (each one's reported); then runs each in turn
        /// in this process, so libtorch and ONNX Runtime load once. A failed recipe does not stop the others, and the
        /// exit code is the worst of them (error over broken gate over success).
        /// </summary>
        private static int RunRecipes(IReadOnlyList<RecipeRun> runs, bool gateFailuresAsWarnings, int threads, RunOutput output, CancellationToken cancellationToken, Inference.ExecutionProvider? provider)
        {
            if (!RecipeList.CheckAll(runs, output))
            {
                return ExitCodes.Error;
            }

            var exitCode = ExitCodes.Ok;
            for (var i = 0; i < runs.Count && !cancellationToken.IsCancellationRequested; i++)
            {
                var run = runs[i];
                if (!output.Quiet)
                {
                    output.Log.WriteLine($"Recipe {i + 1}/{runs.Count}: {run.Recipe}");
                }

                var code = TrackedRun(run, run.GateFailuresAsWarnings ?? gateFailuresAsWarnings, run.Threads ?? threads, output, cancellationToken, provider);
                exitCode = code == ExitCodes.Error || exitCode == ExitCodes.Error ? ExitCodes.Error : Math.Max(exitCode, code);
            }

            return cancellationToken.IsCancellationRequested ? ExitCodes.Error : exitCode;
        }

        /// <summary>
        /// <see cref="RunRecipe"/> with its failures turned into diagnostics and an exit code, and recorded for
        /// <c>--json</c>'s document.
        /// </summary>
        private static int TrackedRun(RecipeRun run, bool gateFailuresAsWarnings, int threads, RunOutput output, CancellationToken cancellationToken, Inference.ExecutionProvider? provider)
        {
            output.Begin(run.Recipe);
            var code = Guard(() =>
            {
                try
                {
                    return RunRecipe(run, gateFailuresAsWarnings, threads, output, cancellationToken, provider);
                }
                catch (CompressionException e)
                {
                    foreach (var diagnostic in e.Diagnostics)
                    {
                        output.Record(diagnostic);
                    }

                    throw;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Guard prints it with its stack trace; the document says what it was.
                    output.Record(Diagnostic.Error(DiagnosticCodes.Internal, $"Internal error ({e.GetType().Name}): {e.Message}."));
                    throw;
                }
            });
            output.End(code);
            return code;
        }

        private static int RunRecipe(RecipeRun run, bool gateFailuresAsWarnings, int threads, RunOutput output, CancellationToken cancellationToken, Inference.ExecutionProvider? provider)
        {
            // Gone until this run succeeds with every gate passed: a failed, interrupted or gate-broken run never
            // looks up to date to a build, which then runs (and reports) again.
            if (run.StampFile is not null && File.Exists(run.StampFile))
            {
                File.Delete(run.StampFile);
            }

            var recipe = RecipeLoader.Load(run.Recipe);
            FirstUse.EnsureLibTorch(cancellationToken);
            if (run.DependencyFile is not null)
            {
                AtomicFile.WriteAllText(run.DependencyFile, string.Join('\n', recipe.InputFiles()) + "\n");
            }

            var reporter = output.Reporter();
            var options = new PipelineOptions(
                run.CacheDirectory ?? ArtifactCache.DefaultRoot(recipe.Path),
                run.OutputDirectory ?? recipe.Directory,
                reporter) { Threads = threads, ExecutionProvider = provider, RemoteCache = run.RemoteCache };
            var result = CompressionRun.Run(recipe, options, cancellationToken);
            if (!output.Quiet)
            {
                output.Log.WriteLine();
                output.Log.Write(Reports.ReportWriter.Markdown(result));
            }

            foreach (var failure in GateEvaluator.Failures(recipe.Path, result.Gates))
            {
                var diagnostic = gateFailuresAsWarnings ? failure with { Severity = DiagnosticSeverity.Warning } : failure;
                Console.Error.WriteLine(diagnostic);
                output.Record(diagnostic);
            }

            output.Finished(result, gateFailuresAsWarnings);
            if (result.OutputModel is not null)
            {
                if (!output.Quiet)
                {
                    output.Log.WriteLine($"Wrote {result.OutputModel}");
                }

                if (run.StampFile is not null)
                {
                    // What this run wrote, so a build can remove what an earlier run wrote and this one did not.
                    string?[] written = [result.OutputModel, result.DataDescription, .. result.Reports, .. FolderFiles(result.OutputFolder)];
                    AtomicFile.WriteAllText(run.StampFile, string.Concat(written.OfType<string>().Select(f => f + "\n")));
                }
            }
            else if (!output.Quiet)
            {
                output.Log.WriteLine($"A gate failed: {recipe.Outputs.Model} was not replaced.");
            }

            if (!output.Quiet)
            {
                output.Log.WriteLine(RecipeSummary.Line(result));
            }

            return result.GatesPassed || gateFailuresAsWarnings ? ExitCodes.Ok : ExitCodes.GateFailed;
        }

        /// <summary>Every file of a generative student's published folder (none without one).</summary>
        private static IEnumerable<string> FolderFiles(string? folder) =>
            folder is not null && Directory.Exists(folder) ? Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal) : [];

        /// <summary>Turns engine failures into diagnostics and exit codes; never a raw stack trace for user errors.</summary>
        internal static int Guard(Func<int> action)
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
