using System.Text.Json;
using System.Text.Json.Nodes;
using ModelCompression.Core.Tests.Generation;
using ModelCompression.Diagnostics;
using ModelCompression.Generation;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Text;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// task: generation through whole runs, on "reverse this word" (3-letter words of a-f): a teacher decoder made by a
/// finetune-only recipe, then a smaller student distilled from it by a second recipe (the teacher answers a prompt
/// pool, sequence- and token-level distillation, the labels-only twin, dynamic int8), gated, published as a model and
/// its folder, reported; and the loader's refusals that tie a task to its data, student and stages.
/// </summary>
[Trait("Category", "Slow")] // trains decoders through whole pipeline runs
public sealed class GenerationRunTests(ITestOutputHelper output) : IDisposable
{
    private const string Template = """
        generation:
          task_type: qa
          tokenizer: byte
          max_length: 24
          max_new_tokens: 6
          system_template: "S: {content}\n"
          user_template: "Q: {content}\n"
          assistant_template: "A: {content}<|endoftext|>"
          generation_prompt: "A: "
          markers: []
          samples: 3
        """;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_teacher_made_by_finetune_is_distilled_into_a_smaller_student_that_passes_its_gates()
    {
        WriteData();
        var teacherRun = Run("teacher.compress.yaml", """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            {template}
            student: { architecture: decoder, width: 48, heads: 2, layers: 2, feed_forward: 96, dropout: 0, seed: 3 }
            stages:
              - finetune: { epochs: 20, batch_size: 16, learning_rate: 3e-3, seed: 4 }
            gates:
              - exact_match >= 0.8
            outputs: { model: teacher.onnx, report: [json] }
            """);
        Assert.True(teacherRun.GatesPassed, string.Join("; ", teacherRun.Gates.Select(g => g.Message)));
        var teacherEm = teacherRun.Stages[^1].Evaluation.Metrics["exact_match"];
        output.WriteLine($"teacher: {string.Join(", ", teacherRun.Stages[^1].Evaluation.Metrics.Select(m => $"{m.Key} {m.Value:0.###}"))}");

        // The published folder loads as a generative model and answers as the evaluation did.
        var teacherFolder = _dir.File("out/teacher");
        Assert.True(File.Exists(Path.Join(teacherFolder, GenerationConfig.FileName)));
        Assert.True(File.Exists(Path.Join(teacherFolder, GenerationTokenizer.DefaultFileName)));

        var reporter = new RecordingReporter();
        var student = Run("student.compress.yaml", """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
            {template}
            teacher: out/teacher.onnx
            student: { architecture: decoder, width: 32, heads: 2, layers: 1, feed_forward: 64, dropout: 0, seed: 5 }
            stages:
              - generate: { prompts: pool }
              - distill: { epochs: 12, batch_size: 16, learning_rate: 3e-3, alpha: 0.5, temperature: 1, seed: 4 }
              - quantize: { mode: dynamic }
            gates:
              - exact_match >= teacher.exact_match - 0.5
              - parameters <= 60000
            outputs: { model: student.onnx, report: [json, md, html] }
            """, reporter);

        Assert.True(student.GatesPassed, string.Join("; ", student.Gates.Select(g => g.Message)));
        Assert.Equal(["generate", "distill", "baseline", "quantize"], reporter.Stages.Select(s => s.Stage));
        var generate = student.Stages[0];
        Assert.Equal("30", generate.Result.Details["prompts"]);
        var kept = int.Parse(generate.Result.Details["kept"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(kept >= 20, $"kept {kept} of 30 teacher answers");
        var distill = student.Stages[1];
        Assert.Contains("token-level, alpha 0.5", distill.Result.Summary);
        Assert.Equal(kept.ToString(System.Globalization.CultureInfo.InvariantCulture), distill.Result.Details["conversations.teacher"]);
        Assert.NotNull(distill.Baseline);
        Assert.Equal("150", distill.BaselineResult!.Details["conversations.gold"]);
        Assert.Equal(distill.Result.Training!.Steps, distill.BaselineResult.Training!.Steps);
        Assert.NotNull(distill.GainFromDistillation);
        var final = student.Stages[^1].Evaluation;
        Assert.True(final.Metrics["tokens_per_second"] > 0);
        Assert.True(final.Metrics["agreement_with_teacher"] is >= 0 and <= 1);
        Assert.Equal(3, final.Generation!.Samples.Count);
        Assert.True(final.Parameters < teacherRun.Stages[^1].Evaluation.Parameters);
        output.WriteLine($"student: {string.Join(", ", final.Metrics.Select(m => $"{m.Key} {m.Value:0.###}"))}; teacher EM {teacherEm:P0}; gain {distill.GainFromDistillation:+0.000;-0.000}");

        // A student of the teacher's width starts from its second layer, loses half its heads with recovery on the
        // gold answers, and is quantized to 4-bit blocks: still a decoder of the convention, still gated.
        var pruned = Run("pruned.compress.yaml", """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            {template}
            teacher: out/teacher.onnx
            student: { architecture: decoder, width: 48, heads: 2, layers: 1, feed_forward: 96, dropout: 0, seed: 6 }
            stages:
              - finetune: { init_from_teacher: true, layer_map: [1], epochs: 8, batch_size: 16, learning_rate: 3e-3, seed: 4 }
              - prune: { method: heads, sparsity: 0.5, recovery_epochs: 4, batch_size: 16, learning_rate: 3e-3 }
              - quantize: { mode: int4, block_size: 16 }
            gates:
              - exact_match >= 0.3
            outputs: { model: pruned.onnx, report: [json, md] }
            """);
        Assert.True(pruned.GatesPassed, string.Join("; ", pruned.Gates.Select(g => g.Message)));
        Assert.NotEqual("0", pruned.Stages[0].Result.Details["initializers_from_teacher"]);
        Assert.True(int.Parse(pruned.Stages[1].Result.Details["parameters_after"], System.Globalization.CultureInfo.InvariantCulture) < int.Parse(pruned.Stages[1].Result.Details["parameters_before"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(pruned.Stages[2].Evaluation.SizeBytes < pruned.Stages[1].Evaluation.SizeBytes);
        output.WriteLine(string.Join("\n", pruned.Stages.Select(st => $"{st.Result.Stage}: {st.Result.Summary}; EM {st.Evaluation.Metrics["exact_match"]:P0}, {st.Evaluation.SizeBytes} bytes")));
        Assert.Contains("| finetune |", File.ReadAllText(_dir.File("out/pruned.report.md")), StringComparison.Ordinal);

        // A second run takes everything from the cache.
        var again = new RecordingReporter();
        var rerun = Run("student.compress.yaml", null, again);
        Assert.All(again.Stages, s => Assert.True(s.Cached, $"{s.Stage} ran again"));
        Assert.Equal(final.Metrics["exact_match"], rerun.Stages[^1].Evaluation.Metrics["exact_match"]);

        // report.json: schema 4, the task type and every evaluation's generation facts; the HTML shows the samples.
        var report = JsonNode.Parse(File.ReadAllText(_dir.File("out/student.report.json")))!;
        Assert.Equal(4, report["schema_version"]!.GetValue<int>());
        Assert.Equal("generation", report["task"]!.GetValue<string>());
        Assert.Equal("qa", report["stages"]![1]!["evaluation"]!["generation"]!["task_type"]!.GetValue<string>());
        // The generate stage passed the untrained built-in student through: its row has the footprint, no answers.
        Assert.Null(report["stages"]![0]!["evaluation"]!["generation"]);
        Assert.Equal(student.Stages[1].Evaluation.Parameters, report["stages"]![0]!["evaluation"]!["parameters"]!.GetValue<long>());
        var html = File.ReadAllText(_dir.File("out/student.report.html"));
        Assert.Contains(System.Net.WebUtility.HtmlEncode(final.Generation.Samples[0].Answer), html);
    }

    [Fact]
    public void Significant_gates_against_a_baseline_use_McNemar_for_exact_match_and_a_paired_bootstrap_for_f1()
    {
        WriteData();
        const string Recipe = """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            {template}
            student: { architecture: decoder, width: 48, heads: 2, layers: 2, feed_forward: 96, dropout: 0, seed: 3 }
            stages:
              - finetune: { epochs: {epochs}, batch_size: 16, learning_rate: 3e-3, seed: 4 }
            gates:
              - { gate: exact_match >= baseline.exact_match, significant: true }
              - { gate: f1 >= baseline.f1, significant: true }
            baseline: reversal.baseline.json
            outputs: { model: reversal.onnx, report: [json] }
            """;
        var good = Run("reversal.compress.yaml", Recipe.Replace("{epochs}", "20", StringComparison.Ordinal));
        Assert.All(good.Gates, g => Assert.True(g.Skipped, g.Message));
        new ModelCompression.Gates.BaselineFile(ModelCompression.Gates.BaselineFile.CurrentSchemaVersion, DateTimeOffset.UtcNow, good.DataHash, good.Stages[^1].Evaluation)
            .Save(_dir.File("reversal.baseline.json"));

        // The same model again: equal to the baseline, both gates hold, and say how it compares (a pass of a significant
        // gate against the baseline still states the paired test).
        var same = Run("reversal.compress.yaml", null);
        Assert.True(same.GatesPassed);
        Assert.Contains("McNemar exact test on 0 discordant samples", same.Gates[0].Message, StringComparison.Ordinal);
        Assert.Contains("paired bootstrap over 36 test records, p = 1", same.Gates[1].Message, StringComparison.Ordinal);
        Assert.All(same.Gates, g => Assert.Equal(1, g.PValue));

        // Two epochs instead of twenty: far worse on the same 36 records, and both tests say so.
        var worse = Run("reversal.compress.yaml", Recipe.Replace("{epochs}", "2", StringComparison.Ordinal));
        output.WriteLine(string.Join("\n", worse.Gates.Select(g => g.Message)));
        Assert.False(worse.GatesPassed);
        var (exact, f1) = (worse.Gates[0], worse.Gates[1]);
        Assert.Contains("McNemar exact test", exact.Message, StringComparison.Ordinal);
        Assert.Contains("paired bootstrap over 36 test records", f1.Message, StringComparison.Ordinal);
        Assert.All(worse.Gates, g => Assert.True(!g.Passed && g.PValue < 0.05, g.Message));
    }

    [Fact]
    public void A_decoder_exported_by_PyTorch_is_the_student_and_its_cacheless_export_the_teacher()
    {
        // The committed byte-level GPT-2 fixture (257 ids: the byte tokenizer without markers) is both the teacher (its
        // export without cache inputs, as it is) and the student (the export with the cache: imported into the
        // trainable graph, trained, written back with its cache). alpha 0.5 distils on the teacher's token
        // distributions, which the cacheless export gives in one pass per conversation.
        WriteData();
        var fixture = Path.Join(Repo.Root, "tests", "fixtures", "decoder", "byte_decoder.onnx");
        var noCache = Path.Join(Repo.Root, "tests", "fixtures", "decoder", "byte_decoder_nocache.onnx");
        var run = Run("pytorch.compress.yaml", $$"""
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            {template}
            teacher: {{noCache}}
            student: { model: {{fixture}} }
            stages:
              - distill: { epochs: 3, batch_size: 16, learning_rate: 1e-3, alpha: 0.5, temperature: 1, baseline: false, seed: 4 }
            gates:
              - perplexity <= teacher.perplexity
            outputs: { model: pytorch.onnx, report: [json] }
            """);
        Assert.Contains("token-level, alpha 0.5", run.Stages[0].Result.Summary, StringComparison.Ordinal);

        Assert.True(run.GatesPassed, string.Join("; ", run.Gates.Select(g => g.Message)));
        var (before, after) = (run.Teacher!.Metrics["perplexity"], run.Stages[^1].Evaluation.Metrics["perplexity"]);
        output.WriteLine($"fixture perplexity on the reversals {before:0.###} -> {after:0.###} after 3 epochs; {run.Stages[0].Result.Summary}");
        // Half the loss pulls towards the teacher's own distribution, the other half to the gold answers: it still learns them.
        Assert.True(after < before / 2, $"perplexity {before} -> {after}");
        // The written-back student keeps the fixture's signature: its cache inputs and outputs, 257 logits.
        var signature = DecoderSignature.Read(Onnx.OnnxModelFile.Load(run.OutputModel!), run.OutputModel!);
        Assert.Equal(DecoderSignature.Read(Onnx.OnnxModelFile.Load(fixture), fixture), signature);
    }

    [Fact]
    public void The_loader_ties_each_task_to_its_data_student_and_stages()
    {
        WriteData();
        var wrongData = Refused("""
            task: generation
            data: { train: train.jsonl, test: test.jsonl, text: { tokenizer: cl100k_base } }
            student: { architecture: decoder }
            stages: [finetune]
            """);
        Assert.Contains(wrongData, d => d.Message.Contains("format: chat", StringComparison.Ordinal));

        var decoderForClassification = Refused("""
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            generation: { task_type: math }
            student: { architecture: decoder }
            stages: [finetune]
            """);
        Assert.Contains(decoderForClassification, d => d.Message.Contains("writes text (task: generation)", StringComparison.Ordinal));
        Assert.Contains(decoderForClassification, d => d.Message.Contains("'generation' applies to task: generation", StringComparison.Ordinal) && d.Line == 2);
        Assert.Contains(decoderForClassification, d => d.Message.Contains("Chat data is for task: generation", StringComparison.Ordinal));

        var stages = Refused("""
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            generation: { task_type: nli, answer_pattern: "(\\d+)", tokenizer: tiktoken }
            student: { architecture: mlp }
            stages:
              - finetune
              - prune: { method: magnitude, sparsity: 0.5 }
              - quantize: { mode: static }
              - factorize
            gates:
              - accuracy >= 0.9
            """);
        Assert.Contains(stages, d => d.Line == 7 && d.Message.Contains("by whole layers or attention heads (method: layers or heads), not magnitude", StringComparison.Ordinal));
        Assert.Contains(stages, d => d.Line == 9 && d.Message.Contains("factorize does not run on decoders yet (stages for task: generation: finetune, generate, distill, prune, quantize)", StringComparison.Ordinal));
        Assert.Contains(stages, d => d.Line == 8 && d.Message.Contains("decoders take mode dynamic, int4 or fp16", StringComparison.Ordinal));
        Assert.Contains(stages, d => d.Message.Contains("architecture 'decoder'", StringComparison.Ordinal));
        Assert.Contains(stages, d => d.Message.Contains("answer_pattern applies to the math task only", StringComparison.Ordinal));
        Assert.Contains(stages, d => d.Message.Contains("tokenizer_source", StringComparison.Ordinal));
        Assert.Contains(stages, d => d.Message.Contains("'accuracy' is not a metric of task 'generation'", StringComparison.Ordinal) && d.Message.Contains("label_accuracy", StringComparison.Ordinal));
    }

    [Fact]
    public void A_teacher_with_a_tokenizer_of_another_kind_is_refused_token_level_distillation_and_init_at_load_time()
    {
        WriteData();
        // A teacher folder as this tool writes it: the model (its content is not read at load time) and its tokenizer.
        var folder = _dir.Dir("char-teacher");
        File.WriteAllBytes(Path.Join(folder, "model.onnx"), []);
        GenerationTokenizer.Create(new GenerationTokenizerOptions(GenerationTokenizerKind.Character), ["abc def"]).Save(Path.Join(folder, GenerationTokenizer.DefaultFileName));

        var refused = Refused("""
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
            generation: { task_type: qa, tokenizer: byte }
            teacher: char-teacher/model.onnx
            student: { architecture: decoder }
            stages:
              - generate
              - distill: { epochs: 1,
                  alpha: 0.5 }
            """);
        var error = Assert.Single(refused);
        Assert.Equal(9, error.Line);
        Assert.Contains("the teacher's tokenizer (character,", error.Message, StringComparison.Ordinal);
        Assert.Contains("is not the student's (byte), so only sequence-level distillation applies", error.Message, StringComparison.Ordinal);

        // Starting from its weights would copy its embedding rows under the student's token ids: refused at the key.
        var init = Assert.Single(Refused("""
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            generation: { task_type: qa, tokenizer: byte }
            teacher: char-teacher/model.onnx
            student: { architecture: decoder }
            stages:
              - finetune: { epochs: 1,
                  init_from_teacher: true }
            """));
        Assert.Equal(8, init.Line);
        Assert.Contains("Stage 'finetune': init_from_teacher copies the teacher's token embedding row by token id, and the teacher's tokenizer (character,", init.Message, StringComparison.Ordinal);

        // Sequence-level distillation (alpha 0) from the same teacher loads.
        var path = _dir.File("sequence-level.compress.yaml");
        File.WriteAllText(path, """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
            generation: { task_type: qa, tokenizer: byte }
            teacher: char-teacher/model.onnx
            student: { architecture: decoder }
            stages: [generate, { distill: { alpha: 0 } }]
            """);
        Assert.Equal(["generate", "distill"], RecipeLoader.Load(path).Stages.Select(s => s.Kind));
    }

    [Fact]
    public void A_teacher_with_its_own_tokenizer_is_given_its_own_positions_not_the_students_max_length()
    {
        WriteData();
        // A byte-level teacher of 24 positions (a couple of epochs: its answers' quality is not the point here).
        var teacherRun = Run("small-teacher.compress.yaml", """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            {template}
            student: { architecture: decoder, width: 16, heads: 2, layers: 1, feed_forward: 32, dropout: 0, seed: 3 }
            stages:
              - finetune: { epochs: 2, batch_size: 16, learning_rate: 3e-3, seed: 4 }
            outputs: { model: small-teacher.onnx, report: [json] }
            """);

        // The student counts characters, has 40 positions and answers in up to 20; the teacher reads its own bytes, has
        // 24 positions and answers in up to 6 (its generation.json). It is evaluated and answers the pool with its own
        // lengths (before: asked for 40 positions and refused, and its prompts cut to 4 tokens to leave room for 20).
        const string Student = """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool.jsonl }
            {template}
            teacher: out/small-teacher/model.onnx
            student: { architecture: decoder, width: 16, heads: 2, layers: 1, feed_forward: 32, dropout: 0, seed: 5 }
            stages:
              - generate: { prompts: pool }
              - distill: { epochs: 1, batch_size: 16, learning_rate: 3e-3, alpha: 0, baseline: false, seed: 4 }
            outputs: { model: char-student.onnx, report: [json] }
            """;
        var characters = Template.Replace("tokenizer: byte", "tokenizer: character", StringComparison.Ordinal)
            .Replace("max_length: 24", "max_length: 40", StringComparison.Ordinal).Replace("max_new_tokens: 6", "max_new_tokens: 20", StringComparison.Ordinal);
        var student = Run("char-student.compress.yaml", Student.Replace("{template}", characters, StringComparison.Ordinal));

        Assert.Equal("30", student.Stages[0].Result.Details["prompts"]);
        Assert.Equal(teacherRun.Stages[^1].Evaluation.Generation!.Answers, student.Teacher!.Generation!.Answers);
        Assert.Equal(teacherRun.Stages[^1].Evaluation.Metrics["perplexity"], student.Teacher.Metrics["perplexity"]);
        Assert.Contains("sequence-level", student.Stages[1].Result.Summary, StringComparison.Ordinal);

        // The bare .onnx file has no tokenizer beside it, so it would read the student's characters: its 256-odd
        // logits are not the 21 ids of that vocabulary, and the run says so (before, decoding crashed mid-evaluation).
        var bare = Assert.Throws<CompressionException>(() => Run("bare-teacher.compress.yaml", Student.Replace("out/small-teacher/model.onnx", "out/small-teacher.onnx", StringComparison.Ordinal).Replace("{template}", characters, StringComparison.Ordinal)));
        Assert.Equal(DiagnosticCodes.DecoderVocabularyMismatch, bare.Code);
        Assert.Contains("name that folder's model.onnx", bare.Message, StringComparison.Ordinal);

        // A character teacher and a character student whose texts differ ("xyz" only in the student's pool): the same
        // kind, other ids, found when the run has built the student's vocabulary. Starting from the teacher's weights
        // would put its embedding rows under other characters: refused before anything trains.
        var characterTeacher = Run("char-teacher.compress.yaml", """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            {template}
            student: { architecture: decoder, width: 16, heads: 2, layers: 1, feed_forward: 32, dropout: 0, seed: 3 }
            stages:
              - finetune: { epochs: 1, batch_size: 16, learning_rate: 3e-3, seed: 4 }
            outputs: { model: char-teacher.onnx, report: [json] }
            """.Replace("{template}", characters, StringComparison.Ordinal));
        Assert.True(characterTeacher.GatesPassed);
        File.WriteAllText(_dir.File("pool-xyz.jsonl"), """{"messages": [{"role": "user", "content": "xyz"}]}""" + "\n");
        var init = Assert.Throws<CompressionException>(() => Run("init-student.compress.yaml", """
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl, unlabelled: pool-xyz.jsonl }
            {template}
            teacher: out/char-teacher/model.onnx
            student: { architecture: decoder, width: 16, heads: 2, layers: 1, feed_forward: 32, dropout: 0, seed: 5 }
            stages:
              - finetune: { epochs: 1, init_from_teacher: true }
            """.Replace("{template}", characters, StringComparison.Ordinal)));
        Assert.Equal(DiagnosticCodes.RecipeInvalidValue, init.Code);
        Assert.Contains("init_from_teacher copies the teacher's token embedding row by token id", init.Message, StringComparison.Ordinal);
    }

    private IReadOnlyList<Diagnostic> Refused(string yaml) => RecipeTestRuns.Refused(_dir, yaml, output);

    private PipelineResult Run(string name, string? yaml, RecordingReporter? reporter = null)
    {
        var path = _dir.File(name);
        if (yaml is not null)
        {
            File.WriteAllText(path, yaml.Replace("{template}", Template, StringComparison.Ordinal));
        }

        return CompressionRun.Run(RecipeLoader.Load(path), new PipelineOptions(_dir.Dir("cache"), _dir.Dir("out"), reporter ?? new RecordingReporter()) { Threads = 1 });
    }

    private void WriteData() => ChatTrainSupport.WriteReversalSplits(_dir);
}
