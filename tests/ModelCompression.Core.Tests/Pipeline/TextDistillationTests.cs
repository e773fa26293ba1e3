using ModelCompression.Onnx;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using Xunit.Abstractions;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// The text case end to end on real mail (the SpamAssassin slice, 300 mails): JSONL -> cl100k_base tokens with a
/// compact vocabulary -> a built-in transformer fine-tuned into a teacher -> a smaller transformer distilled from it
/// (soft targets and a hint on the residual stream).
/// </summary>
[Trait("Category", "Slow")] // fine-tunes and distils transformers
public sealed class TextDistillationTests(ITestOutputHelper output) : IDisposable
{
    private const string Data = """
        data:
          file: spam.jsonl
          split: { test: 0.2, seed: 7 }
          text: { tokenizer: cl100k_base, max_length: 64, compact_vocabulary: true }
        """;

    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void A_transformer_teacher_is_fine_tuned_on_mail_and_distilled_into_a_smaller_one()
    {
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "text", "spam.jsonl"), _dir.File("spam.jsonl"));
        var cache = _dir.Dir("cache");

        // The teacher is made as the issue says: a built-in architecture fine-tuned on the labels, with no teacher of its own.
        var teacherRecipe = _dir.Write("teacher.compress.yaml", Data + """

            student: { architecture: transformer, width: 64, heads: 4, layers: 2, feed_forward: 128, max_length: 64, dropout: 0.1, seed: 3 }
            stages:
              - finetune: { epochs: 12, batch_size: 16, learning_rate: 1e-3, optimizer: adamw, weight_decay: 0.01 }
              - evaluate: { measure_latency: false }
            outputs: { model: teacher.onnx, report: [json] }
            """);
        var teacher = CompressionRun.Run(RecipeLoader.Load(teacherRecipe), new PipelineOptions(cache, _dir.Path, new RecordingReporter()));
        Assert.Null(teacher.Teacher);
        var teacherAccuracy = teacher.Stages[0].Evaluation.Accuracy;
        output.WriteLine($"teacher: fine-tuned from scratch {teacherAccuracy:P1} on {teacher.Stages[0].Evaluation.Samples} test mails");

        var studentRecipe = _dir.Write("student.compress.yaml", Data + """

            teacher: teacher.onnx
            student: { architecture: transformer, width: 32, heads: 2, layers: 1, feed_forward: 64, max_length: 64 }
            stages:
              - distill: { epochs: 12, batch_size: 16, learning_rate: 2e-3, alpha: 0.7, temperature: 2, hints: ['encoder.layer0.feed_forward.residual -> encoder.layer1.feed_forward.residual'], hint_weight: 0.1 }
              - evaluate: { measure_latency: false }
            gates:
              - accuracy >= teacher.accuracy - 0.15
            outputs: { model: student.onnx, report: [json, md] }
            """);
        var student = CompressionRun.Run(RecipeLoader.Load(studentRecipe), new PipelineOptions(cache, _dir.Path, new RecordingReporter()));
        var distilled = student.Stages[0];
        output.WriteLine($"student: distilled {distilled.Evaluation.Accuracy:P1} ({distilled.Evaluation.Parameters} parameters vs the teacher's {student.Teacher!.Parameters}), labels-only twin {distilled.Baseline!.Accuracy:P1}");

        Assert.True(teacherAccuracy >= 0.8, $"fine-tuned teacher {teacherAccuracy:P1}");
        // The student's last residual stream [batch, 64 tokens, 32] learns the teacher's [batch, 64, 64] through a
        // 32 -> 64 projection along the width, from teacher features computed on the token ids and masks.
        Assert.Equal("encoder.layer0.feed_forward.residual -> encoder.layer1.feed_forward.residual", distilled.Result.Details["hints"]);
        Assert.True(distilled.Evaluation.Parameters < student.Teacher.Parameters / 2);
        Assert.True(student.GatesPassed, string.Join("; ", student.Gates.Select(g => g.Message)));
        var model = OnnxModelFile.Load(student.OutputModel!);
        Assert.Equal(["input_ids", "attention_mask"], model.Graph.Input.Select(i => i.Name));
    }

    [Fact]
    public void A_text_transformer_loses_half_its_heads_and_a_layer_through_a_recipe()
    {
        File.Copy(Path.Join(Repo.Root, "tests", "fixtures", "text", "spam.jsonl"), _dir.File("spam.jsonl"));
        var recipe = _dir.Write("shrink.compress.yaml", Data + """

            student: { architecture: transformer, width: 32, heads: 4, layers: 2, feed_forward: 64, max_length: 64, dropout: 0.1, seed: 3 }
            stages:
              - finetune: { epochs: 8, batch_size: 16, learning_rate: 2e-3, optimizer: adamw, weight_decay: 0.01 }
              - prune: { method: heads, sparsity: 0.5, recovery_epochs: 2, batch_size: 16, learning_rate: 1e-3 }
              - prune: { method: layers, keep_layers: [0], recovery_epochs: 2, batch_size: 16, learning_rate: 1e-3 }
              - evaluate: { measure_latency: false }
            gates:
              - accuracy >= 0.7
            outputs: { model: shrunk.onnx, report: [json] }
            """);

        var result = CompressionRun.Run(RecipeLoader.Load(recipe), new PipelineOptions(_dir.Dir("cache"), _dir.Path, new RecordingReporter()));

        var (trained, heads, layers) = (result.Stages[0], result.Stages[1], result.Stages[2]);
        output.WriteLine($"finetuned {trained.Evaluation.Accuracy:P1} ({trained.Evaluation.Parameters} parameters), heads pruned {heads.Evaluation.Accuracy:P1} ({heads.Evaluation.Parameters}), one layer {layers.Evaluation.Accuracy:P1} ({layers.Evaluation.Parameters})");
        Assert.Equal("4 -> 2", heads.Result.Details["heads.encoder.layer0.attention.context"]);
        Assert.Equal("4 -> 2", heads.Result.Details["heads.encoder.layer1.attention.context"]);
        Assert.Equal("1", layers.Result.Details["layers_dropped"]);
        Assert.True(heads.Evaluation.Parameters < trained.Evaluation.Parameters && layers.Evaluation.Parameters < heads.Evaluation.Parameters);
        Assert.True(result.GatesPassed, string.Join("; ", result.Gates.Select(g => g.Message)));
        var model = OnnxModelFile.Load(result.OutputModel!);
        Assert.Equal(["input_ids", "attention_mask"], model.Graph.Input.Select(i => i.Name));
        Assert.Equal([32L, 16], model.Graph.Initializer.Single(i => i.Name == "encoder.layer0.attention.query.weight").Dims);
    }
}
