using ModelCompression.Core.Tests.Generation;
using ModelCompression.Pipeline;
using ModelCompression.Recipes;
using ModelCompression.Runs;
using ModelCompression.Serving;

namespace ModelCompression.Core.Tests.Pipeline;

/// <summary>
/// What the served-teacher runs share: the reversal task's files, a teacher decoder trained on them by a finetune recipe
/// (out/teacher.onnx, and its model folder out/teacher for <c>serve</c>), the server, and recipe runs in one folder.
/// </summary>
internal sealed class ServedTeacherSupport(TempDir dir)
{
    /// <summary>Writes the reversal splits and trains the teacher; returns its run (exact match in its last stage).</summary>
    public PipelineResult TrainTeacher() 
    {
        ChatTrainSupport.WriteReversalSplits(dir);
        return Run("teacher.compress.yaml", $$"""
            task: generation
            data: { format: chat, train: train.jsonl, test: test.jsonl }
            {{ChatTrainSupport.ReversalGeneration}}
            student: { architecture: decoder, width: 48, heads: 2, layers: 2, feed_forward: 96, dropout: 0, seed: 3 }
            stages:
              - finetune: { epochs: 20, batch_size: 16, learning_rate: 3e-3, seed: 4 }
            outputs: { model: teacher.onnx, report: [json] }
            """, "cache");
    }

    /// <summary>The trained teacher served on 127.0.0.1 as "teacher", with the given fault rules.</summary>
    public RunningServer Serve(params string[] faults) => OpenAiServer.Start(new ServeOptions
    {
        Models = [new ServedModelSource(dir.File("out/teacher")) { Name = "teacher" }],
        Faults = [.. faults.Select(FaultRule.Parse)],
        Threads = 1,
    });

    /// <summary>
    /// The teacher section for <paramref name="server"/>. The timeout is generous unless a run injects slow replies: a reply
    /// past it is retried, so a short one on a loaded machine would send a body twice where a test counts each once.
    /// </summary>
    public static string Endpoint(RunningServer server, string more = "", int timeoutSeconds = 60) =>
        $"teacher: {{ endpoint: \"{server.OpenAiEndpoint}\", model: teacher, {more}temperature: 0, top_p: 1, max_tokens: 6, prompt_template: \"{{content}}\", timeout_seconds: {timeoutSeconds}, retry_delay_seconds: 0, max_retries: 3 }}";

    /// <summary>Writes <paramref name="yaml"/> as <paramref name="name"/> in the folder; returns its path.</summary>
    public string Write(string name, string yaml)
    {
        var path = dir.File(name);
        File.WriteAllText(path, yaml);
        return path;
    }

    /// <summary>Runs the recipe <paramref name="name"/> (written first unless <paramref name="yaml"/> is null) with the cache folder <paramref name="cache"/>, outputs in out/.</summary>
    public PipelineResult Run(string name, string? yaml, string cache) => RecipeTestRuns.Run(dir, name, yaml, cache);
}
