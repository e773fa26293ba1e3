using System.Diagnostics;
using System.Globalization;
using ModelCompression.Torch.Native;
using ModelCompression.Torch.Training;
using TorchSharp;

// Teacher token store at a GPT-2-sized vocabulary: what each form costs on disk, to write, to read one batch, and
// what one distillation step (loss forward + backward) costs on top of reading it. Options: --vocabulary 50257
// --sequences 16 --length 160 --prompt 32 --batch 8 --k 20 --reps 5 --folder <temp>.
var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => args[p.i + 1], StringComparer.Ordinal);
int Option(string name, int fallback) => options.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
var vocabulary = Option("vocabulary", 50257);
var sequences = Option("sequences", 16);
var length = Option("length", 160);
var prompt = Option("prompt", 32);
var batch = Option("batch", 8);
var k = Option("k", 20);
var reps = Option("reps", 5);
var folder = options.GetValueOrDefault("folder") ?? Path.Join(Path.GetTempPath(), "mc-teacher-tokens-bench");
Directory.CreateDirectory(folder);
TorchNativeLoader.EnsureLoaded();
torch.set_num_threads(Environment.ProcessorCount);

// Labels: a prompt without labels, then length - prompt - 1 labelled tokens (the last token predicts nothing).
var labels = new long[sequences * length];
var random = new Random(1);
for (var i = 0; i < labels.Length; i++)
{
    var t = i % length;
    labels[i] = t < prompt || t == length - 1 ? TrainingSet.NoLabel : random.Next(vocabulary);
}

var ids = new long[sequences * length];
var data = new TrainingSet([InputArray.Int64("input_ids", ids, [length])], null, null, vocabulary) { TokenLabels = labels };
var trained = Enumerable.Range(0, sequences).Sum(data.TrainedTokens);
Console.WriteLine(FormattableString.Invariant($"vocabulary {vocabulary}, {sequences} sequences of {length} tokens, {trained} labelled, batch {batch}, k {k}, {Environment.ProcessorCount} threads"));
Console.WriteLine("| form | file MB | bytes per token | write s | read one batch ms (median) | loss fwd+bwd ms (median) | KD value |");
Console.WriteLine("|---|---|---|---|---|---|---|");
foreach (var (form, keep) in new[] { (TeacherTokenForm.Full, 0), (TeacherTokenForm.TopK, k) })
{
    var path = Path.Join(folder, $"{form}.mctok");
    var clock = Stopwatch.StartNew();
    using (var writer = TeacherTokenWriter.Create(path, form, vocabulary, keep))
    {
        var logits = new float[length * vocabulary];
        var noise = new Random(2);
        for (var s = 0; s < sequences; s++)
        {
            for (var i = 0; i < logits.Length; i++)
            {
                logits[i] = (float)(noise.NextDouble() * 8);
            }

            writer.AppendLogits(logits, labels.AsSpan(s * length, length));
        }

        writer.Complete();
    }

    var write = clock.Elapsed.TotalSeconds;
    using var store = TeacherTokenStore.Open(path);
    var set = new TrainingSet(data.Inputs, null, null, vocabulary) { TokenLabels = labels, TeacherTokens = TeacherTokens.Of(store) };
    var objective = new LanguageModelObjective(0.5, 2);
    var rows = Enumerable.Range(0, batch).ToArray();
    var reads = new List<double>();
    var steps = new List<double>();
    var kd = 0.0;
    for (var r = 0; r < reps; r++)
    {
        using var scope = torch.NewDisposeScope();
        clock.Restart();
        var targets = objective.Targets(set, rows);
        reads.Add(clock.Elapsed.TotalMilliseconds);
        var width = length - 1;
        var student = torch.randn([batch, width, vocabulary], requires_grad: true);
        clock.Restart();
        var loss = objective.Loss(student, targets);
        loss.backward();
        steps.Add(clock.Elapsed.TotalMilliseconds);
        kd = loss.item<float>();
    }

    double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
    var size = new FileInfo(path).Length;
    Console.WriteLine(FormattableString.Invariant($"| {form}{(keep > 0 ? $" k {keep}" : "")} | {size / 1e6:F1} | {(double)size / trained:F0} | {write:F1} | {Median(reads):F1} | {Median(steps):F1} | {kd:F3} |"));
    File.Delete(path);
}
