using Microsoft.ML.OnnxRuntime;
using ModelCompression.Data;
using ModelCompression.Inference;
using ModelCompression.Threading;

namespace ModelCompression.Core.Tests.Inference;

public sealed class OnnxRunnerThreadsTests
{
    [Fact]
    public void Sessions_without_a_thread_count_take_the_engine_budget_and_explicit_counts_are_kept()
    {
        var before = EngineThreads.Budget;
        try
        {
            EngineThreads.Use(new CpuBudget(1, "test"));
            using (var options = OnnxRunner.CreateOptions(0, GraphOptimizationLevel.ORT_ENABLE_ALL))
            {
                Assert.Equal(1, options.IntraOpNumThreads);
                Assert.Equal(1, options.InterOpNumThreads);
            }

            EngineThreads.Use(new CpuBudget(3, "test"));
            using (var options = OnnxRunner.CreateOptions(0, GraphOptimizationLevel.ORT_ENABLE_ALL))
            {
                Assert.Equal(3, options.IntraOpNumThreads);
            }

            // Latency measurements choose their own count.
            using (var options = OnnxRunner.CreateOptions(5, GraphOptimizationLevel.ORT_ENABLE_ALL))
            {
                Assert.Equal(5, options.IntraOpNumThreads);
            }
        }
        finally
        {
            EngineThreads.Use(before);
        }
    }

    [Fact]
    public void The_teacher_gives_the_same_logits_on_one_thread_as_on_the_budget()
    {
        var before = EngineThreads.Budget;
        var sample = IdxReader.LoadLabelled(Repo.SampleData("t10k-images-idx3-ubyte.gz"), Repo.SampleData("t10k-labels-idx1-ubyte.gz"), 1 / 255f)
            .Select([.. Enumerable.Range(0, 64)], "slice");
        try
        {
            // A session built with the budget and spinning off opens and runs the real PyTorch-exported teacher.
            EngineThreads.Use(new CpuBudget(2, "test"));
            using var two = new OnnxRunner(Repo.Teacher);
            var twoLogits = two.Run(sample, 64);
            using var one = new OnnxRunner(Repo.Teacher, threads: 1);
            var oneLogits = one.Run(sample, 64);

            Assert.Equal(oneLogits.Length, twoLogits.Length);
            for (var i = 0; i < oneLogits.Length; i++)
            {
                Assert.Equal(oneLogits[i], twoLogits[i], 1e-4f);
            }
        }
        finally
        {
            EngineThreads.Use(before);
        }
    }
}
