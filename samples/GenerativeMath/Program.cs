using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntimeGenAI;

// The student was produced by `dotnet build` (see math.compress.yaml): the build copies its folder (model.onnx,
// genai_config.json, tokenizer.json, generation.json, ...) next to this app, and ONNX Runtime GenAI loads it as it is.
var folder = Path.Combine(AppContext.BaseDirectory, "math.student");
var problems = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "data", "test.jsonl"))
    .Select(line => JsonNode.Parse(line)!["messages"]!.AsArray())
    .Select(messages => (Question: (string)messages[0]!["content"]!, Gold: (string)messages[1]!["content"]!))
    .ToList();

using var model = new Model(folder);
using var tokenizer = new Tokenizer(model);

// The chat template the student was trained with (generation.json's chat_template): each marker is one token.
using var endMarker = tokenizer.Encode("<|end|>");
if (endMarker[0].Length != 1)
{
    throw new InvalidOperationException($"'{folder}' has no <|end|> token: it is not the chat model math.compress.yaml makes.");
}

var endId = endMarker[0][0];
const int MaxNewTokens = 32;

var correct = 0;
var clock = Stopwatch.StartNew();
for (var i = 0; i < problems.Count; i++)
{
    var (question, gold) = problems[i];
    var answer = Answer(question);
    var right = FinalNumber(answer) is { } number && number == FinalNumber(gold);
    correct += right ? 1 : 0;
    if (i < 5)
    {
        Console.WriteLine($"Q: {question}");
        Console.WriteLine($"student: {answer.ReplaceLineEndings(" | ")}");
        Console.WriteLine($"gold:    {gold.ReplaceLineEndings(" | ")}   {(right ? "right" : "wrong")}");
        Console.WriteLine();
    }
}

var size = Directory.GetFiles(folder).Sum(f => new FileInfo(f).Length);
Console.WriteLine($"Student exact match on {problems.Count} test problems: {100.0 * correct / problems.Count:F1}% " +
    $"({clock.Elapsed.TotalSeconds:F1} s, model folder {size / 1024} KB)");

// Greedy decoding of one question. GenAI stops at the end marker by itself (genai_config.json lists it beside the end
// of text) and leaves it out of the sequence; the answer is what it generated before it.
string Answer(string question)
{
    using var prompt = tokenizer.Encode($"<|user|>\n{question}<|end|>\n<|assistant|>\n");
    var promptLength = prompt[0].Length;
    using var options = new GeneratorParams(model);
    options.SetSearchOption("max_length", promptLength + MaxNewTokens);
    options.SetSearchOption("do_sample", false);
    using var generator = new Generator(model, options);
    generator.AppendTokenSequences(prompt);
    while (!generator.IsDone())
    {
        generator.GenerateNextToken();
    }

    var answer = generator.GetSequence(0).ToArray()[promptLength..].TakeWhile(token => token != endId).ToArray();
    return tokenizer.Decode(answer);
}

// The final number of a worked answer: the number after its last "####", as the recipe's math task parses it (the
// engine also drops thousands commas and trailing zeros; these problems have small whole-number answers).
static string? FinalNumber(string answer) =>
    Regex.Matches(answer, @"####\s*\$?\s*(-?[0-9]+(?:\.[0-9]+)?)(?![0-9A-Za-z_])") is { Count: > 0 } matches ? matches[^1].Groups[1].Value : null;
