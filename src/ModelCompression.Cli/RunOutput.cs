using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Diagnostics;
using ModelCompression.Pipeline;
using ModelCompression.Reports;

namespace ModelCompression.Cli;

/// <summary>
/// Where `run` writes what. By default progress and the result table go to stdout and diagnostics to stderr. With
/// <c>--json</c> stdout carries one JSON document and nothing else (a CI step pipes it to jq), everything else goes
/// to stderr. With <c>--quiet</c> only diagnostics and one line per recipe with its result are written.
/// </summary>
internal sealed class RunOutput(bool json, bool quiet)
{
    private static readonly JsonSerializerOptions DocumentOptions = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly List<JsonObject> _recipes = [];
    private JsonObject? _current;
    private JsonArray? _diagnostics;

    /// <summary>True for <c>--quiet</c>: no progress and no result table, only diagnostics and the one-line result.</summary>
    public bool Quiet => quiet;

    /// <summary>Where text for people goes: stderr under <c>--json</c>, which keeps stdout for the document.</summary>
    public TextWriter Log => json ? Console.Error : Console.Out;

    /// <summary>A reporter for one run's progress, writing where <see cref="Log"/> does and recording its diagnostics.</summary>
    public ConsoleReporter Reporter()
    {
        var interactive = (json ? !Console.IsErrorRedirected : !Console.IsOutputRedirected) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"));
        return new ConsoleReporter(Log, Console.Error, interactive, quiet) { Recorded = Record };
    }

    /// <summary>Starts the record of the run of <paramref name="recipe"/>.</summary>
    public void Begin(string recipe)
    {
        _diagnostics = [];
        _current = new JsonObject
        {
            ["recipe"] = recipe,
            ["exit_code"] = null,
            ["report"] = null,
            ["diagnostics"] = _diagnostics,
        };
        _recipes.Add(_current);
    }

    /// <summary>Records a diagnostic of the current run (it is printed to stderr by whoever found it).</summary>
    public void Record(Diagnostic diagnostic)
    {
        _diagnostics?.Add(new JsonObject
        {
            ["severity"] = diagnostic.Severity == DiagnosticSeverity.Error ? "error" : "warning",
            ["code"] = diagnostic.Code,
            ["message"] = diagnostic.Message,
            ["file"] = diagnostic.File,
            ["line"] = diagnostic.Line,
            ["column"] = diagnostic.Column,
        });
    }

    /// <summary>
    /// The run finished with <paramref name="result"/>: its report goes into the document and, under <c>--quiet</c>,
    /// its one-line result is written.
    /// </summary>
    public void Finished(PipelineResult result, bool gateFailuresAsWarnings)
    {
        if (_current is not null)
        {
            _current["report"] = JsonReport.Build(result, DateTimeOffset.UtcNow);
        }

        if (quiet)
        {
            Log.WriteLine(ResultLine(result, gateFailuresAsWarnings));
        }
    }

    /// <summary>The current run ended with <paramref name="exitCode"/>.</summary>
    public void End(int exitCode)
    {
        if (_current is not null)
        {
            _current["exit_code"] = exitCode;
        }

        _current = null;
        _diagnostics = null;
    }

    /// <summary>
    /// Under <c>--json</c>, writes the document to stdout: the one recipe's record, or for <c>--recipes</c>
    /// <c>{ "exit_code": n, "recipes": [ … ] }</c> with every recipe's record in order.
    /// </summary>
    public void WriteDocument(bool list, int exitCode)
    {
        if (!json)
        {
            return;
        }

        JsonNode document = list || _recipes.Count != 1
            ? new JsonObject { ["exit_code"] = exitCode, ["recipes"] = new JsonArray([.. _recipes]) }
            : _recipes[0];
        Console.Out.WriteLine(document.ToJsonString(DocumentOptions));
    }

    /// <summary>
    /// One line with what a run came to: the recipe, whether its gates passed, the final model's accuracy and size,
    /// and what was written.
    /// </summary>
    public static string ResultLine(PipelineResult result, bool gateFailuresAsWarnings)
    {
        var final = result.Stages[^1].Evaluation;
        var failed = result.Gates.Count(g => !g.Passed);
        var gates = result.Gates.Count == 0 ? "no gates"
            : failed == 0 ? $"{result.Gates.Count}/{result.Gates.Count} gates passed"
            : $"{failed} of {result.Gates.Count} gates failed{(gateFailuresAsWarnings ? " (as warnings)" : string.Empty)}";
        var written = result.OutputModel is not null ? $"wrote {result.OutputModel}" : $"{result.Recipe.Outputs.Model} was not replaced";
        return string.Create(
            CultureInfo.InvariantCulture,
            $"{Path.GetFileName(result.Recipe.Path)}: {gates}; {Headline.Of(result.Recipe, final, a => (a * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%")}, {final.SizeMb:0.###} MB; {written}");
    }
}
