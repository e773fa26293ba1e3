using ModelCompression.Threading;
using ModelCompression.Torch.Native;
using TorchSharp;

namespace ModelCompression.Torch.Tests.Threading;

public sealed class EngineThreadsTests
{
    [Fact]
    public void Libtorch_takes_the_budget_once_loaded_and_again_when_it_changes()
    {
        var before = EngineThreads.Budget;
        try
        {
            TorchNativeLoader.EnsureLoaded();
            Assert.Equal(before.Threads, torch.get_num_threads());

            // 1 differs from every machine's automatic budget but a 1-CPU one; 3 then differs from 1.
            EngineThreads.Use(new CpuBudget(1, "test"));
            Assert.Equal(1, torch.get_num_threads());
            EngineThreads.Use(new CpuBudget(3, "test"));
            Assert.Equal(3, torch.get_num_threads());
            Assert.Equal(3, EngineThreads.Budget.Threads);

            // The budget is a thread count, not a result: a matrix product is the same either way.
            using var a = torch.arange(0, 64 * 64, dtype: torch.float32).reshape(64, 64) / 4096f;
            using var threeThreads = torch.mm(a, a);
            EngineThreads.Use(new CpuBudget(1, "test"));
            using var oneThread = torch.mm(a, a);
            Assert.True(threeThreads.allclose(oneThread, rtol: 1e-5, atol: 1e-6));
        }
        finally
        {
            EngineThreads.Use(before);
        }

        Assert.Equal(before.Threads, torch.get_num_threads());
    }

    [Fact]
    public void A_budget_below_one_thread_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => EngineThreads.Use(new CpuBudget(0, "test")));
    }
}
