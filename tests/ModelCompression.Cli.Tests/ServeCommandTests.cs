using System.Diagnostics;
using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ModelCompression.Cli.Tests;

/// <summary>
/// `dotnet compress serve` as a user runs it: it prints the URL it listens on and one line per request (never a body),
/// answers OpenAI requests, and stops cleanly with exit code 0 on Ctrl+C (SIGINT); usage mistakes are exit code 2, a bad
/// fault rule exit code 1 with MC2069.
/// </summary>
public sealed class ServeCommandTests
{
    private static readonly string Assembly = typeof(ServeCommandTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "CliAssembly").Value!;

    private static string Decoder => Path.Join(Repo.Root, "tests", "fixtures", "decoder", "byte_decoder.onnx");

    [Fact]
    public async Task Serve_prints_its_url_answers_logs_each_request_and_stops_on_ctrl_c()
    {
        using var process = Start("serve", Decoder, "--tokenizer", "byte", "--port", "0", "--model-name", "fox", "--fault", "429@request:1");
        // Standard error is read from the start: a server that wrote more than a pipe holds to an unread stream would
        // block on the write and never stop (its warnings, and ONNX Runtime's, go there).
        var errors = process.StandardError.ReadToEndAsync();
        try
        {
            await ServeAndStop(process, errors);
        }
        finally
        {
            // A failed assertion must not leave the server running.
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    [Fact]
    public void Usage_mistakes_exit_2_and_a_bad_fault_rule_exits_1_with_its_code()
    {
        using var dir = new TempDir();
        var unset = CompressCli.Run(dir.Path, "serve", Decoder, "--tokenizer", "byte", "--api-key-env", "MC_SERVE_TEST_KEY_THAT_IS_NOT_SET");
        Assert.True(unset.ExitCode == 2, unset.ToString());
        Assert.Contains("error MC1010: --api-key-env names 'MC_SERVE_TEST_KEY_THAT_IS_NOT_SET', which is not set or empty.", unset.Stderr, StringComparison.Ordinal);

        var names = CompressCli.Run(dir.Path, "serve", Decoder, "--model-name", "a", "--model-name", "b");
        Assert.True(names.ExitCode == 2, names.ToString());

        var rule = CompressCli.Run(dir.Path, "serve", Decoder, "--tokenizer", "byte", "--fault", "418@always");
        Assert.True(rule.ExitCode == 1, rule.ToString());
        Assert.Contains("error MC2069: Fault rule '418@always'", rule.Stderr, StringComparison.Ordinal);

        var tokenizer = CompressCli.Run(dir.Path, "serve", Decoder, "--port", "0");
        Assert.True(tokenizer.ExitCode == 1, tokenizer.ToString());
        Assert.Contains("error MC2068", tokenizer.Stderr, StringComparison.Ordinal);
    }

    private static async Task ServeAndStop(Process process, Task<string> errors)
    {
        var lines = new List<string>();
        string? url = null;
        var reader = process.StandardOutput;
        while (url is null && await reader.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(2)) is { } line)
        {
            lines.Add(line);
            url = Regex.Match(line, @"^Serving fox at (http://127\.0\.0\.1:\d+/v1) ").Groups[1].Value is { Length: > 0 } found ? found : null;
        }

        if (url is null)
        {
            process.Kill();
            Assert.Fail(string.Join("\n", lines) + await errors);
        }

        using (var http = new HttpClient())
        {
            const string Body = """{"model": "fox", "prompt": "The red fox"}""";
            Assert.Equal(429, (int)(await http.PostAsync(url + "/completions", new StringContent(Body))).StatusCode);
            var answer = JsonDocument.Parse(await (await http.PostAsync(url + "/completions", new StringContent(Body))).Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(" jumps over the lazy dog.", answer.GetProperty("choices")[0].GetProperty("text").GetString());
            Assert.Equal(200, (int)(await http.GetAsync(url + "/models")).StatusCode);
        }

        // Ctrl+C is SIGINT.
        using (var kill = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill.WaitForExitAsync();
        }

        var remaining = reader.ReadToEndAsync();
        if (await Task.WhenAny(remaining, Task.Delay(TimeSpan.FromMinutes(2))) != remaining)
        {
            process.Kill();
            Assert.Fail($"the server did not stop within 2 minutes of SIGINT; it wrote:\n{string.Join("\n", lines)}\n{await remaining}\nstandard error:\n{await errors}");
        }

        var rest = await remaining;
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}\n{rest}\n{await errors}");
        var log = rest.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^POST /v1/completions 429 - 0\+0 tokens \d+ ms fault 429@request:1$", log[0]);
        Assert.Matches(@"^POST /v1/completions 200 fox 11\+26 tokens \d+ ms$", log[1]);
        Assert.Matches(@"^GET /v1/models 200 - 0\+0 tokens \d+ ms$", log[2]);
        Assert.Equal("Stopped after 3 requests.", log[^1]);
        Assert.DoesNotContain("red fox", rest, StringComparison.Ordinal);
    }

    private static Process Start(params string[] arguments)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Assembly);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        return Process.Start(start)!;
    }
}
