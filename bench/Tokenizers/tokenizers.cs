#:project ../../src/ModelCompression.Core/ModelCompression.Core.csproj
#:property PublishAot=false
// Tokenizer statistics for generation on the committed SpamAssassin slice (tests/fixtures/text/spam.jsonl): tokens per
// mail, vocabulary and compact vocabulary sizes, encode throughput, and whether decode(encode(x)) == x for every mail.
// Run from the repository root: dotnet run bench/Tokenizers/tokenizers.cs
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ModelCompression.Text;

var path = args.Length > 0 ? args[0] : "tests/fixtures/text/spam.jsonl";
var texts = File.ReadLines(path).Where(l => l.Trim().Length > 0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!).ToList();
var megabytes = texts.Sum(t => System.Text.Encoding.UTF8.GetByteCount(t)) / 1e6;
string[] markers = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"];
(string Name, GenerationTokenizerOptions Options)[] kinds =
[
    ("byte", new(GenerationTokenizerKind.Byte, Specials: markers)),
    ("character", new(GenerationTokenizerKind.Character, Specials: markers)),
    ("gpt2", new(GenerationTokenizerKind.Gpt2, Specials: markers)),
    ("r50k_base", new(GenerationTokenizerKind.Tiktoken, "r50k_base", markers)),
    ("cl100k_base", new(GenerationTokenizerKind.Tiktoken, "cl100k_base", markers)),
    ("o200k_base", new(GenerationTokenizerKind.Tiktoken, "o200k_base", markers)),
];
Console.WriteLine($"{texts.Count} mails, {megabytes:0.00} MB of UTF-8, {Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSArchitecture}");
Console.WriteLine("| tokenizer | vocabulary | compact vocabulary | tokens/mail (mean) | tokens/mail (p95) | encode MB/s | round trip |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---|");
foreach (var (name, options) in kinds)
{
    var tokenizer = GenerationTokenizer.Create(options, texts);
    tokenizer.Encode(texts[0]); // warm up
    var clock = Stopwatch.StartNew();
    var encoded = texts.Select(tokenizer.Encode).ToList();
    var seconds = clock.Elapsed.TotalSeconds;
    var exact = texts.Zip(encoded).Count(p => tokenizer.Decode(p.Second) == p.First);
    var compact = GenerationTokenizer.Create(options with { Compact = true }, texts);
    var lengths = encoded.Select(e => e.Count).Order().ToList();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {tokenizer.VocabularySize} | {compact.VocabularySize} | {lengths.Average():0} | {lengths[(int)(0.95 * (lengths.Count - 1))]} | {megabytes / seconds:0.0} | {exact}/{texts.Count} |"));
}

// Microsoft.ML.Tokenizers' own encode (which turns special tokens' text into their ids), for comparison.
foreach (var encoding in new[] { "r50k_base", "cl100k_base", "o200k_base" })
{
    var library = Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForEncoding(encoding);
    library.EncodeToIds(texts[0]);
    var clock = Stopwatch.StartNew();
    var count = texts.Sum(t => library.EncodeToIds(t).Count);
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"library {encoding}: {megabytes / clock.Elapsed.TotalSeconds:0.0} MB/s, {count} tokens"));
}
