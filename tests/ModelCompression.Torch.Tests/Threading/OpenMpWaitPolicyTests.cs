using ModelCompression.Threading;
using ModelCompression.Torch.Native;

namespace ModelCompression.Torch.Tests.Threading;

public sealed class OpenMpWaitPolicyTests
{
    [Fact]
    public void Threads_sleep_at_once_unless_the_user_chose_how_they_wait()
    {
        Assert.Equal("PASSIVE", OpenMpWaitPolicy.Choose(_ => null));
        Assert.Equal("PASSIVE", OpenMpWaitPolicy.Choose(_ => string.Empty));
        Assert.Null(OpenMpWaitPolicy.Choose(name => name == "OMP_WAIT_POLICY" ? "ACTIVE" : null));
        Assert.Null(OpenMpWaitPolicy.Choose(name => name == "GOMP_SPINCOUNT" ? "10000" : null));
    }

    [Fact]
    public void Libgomp_finds_the_policy_in_the_native_environment_once_libtorch_is_loaded()
    {
        // What the test process was started with decides what libgomp must see: the user's choice, else PASSIVE.
        var chosen = Environment.GetEnvironmentVariable(OpenMpWaitPolicy.Variable);
        TorchNativeLoader.EnsureLoaded();

        // The native environment, not .NET's copy of it: libgomp reads getenv in its constructor.
        var expected = string.IsNullOrEmpty(chosen) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(OpenMpWaitPolicy.SpinCountVariable))
            ? "PASSIVE"
            : chosen;
        Assert.Equal(expected, OpenMpWaitPolicy.ReadNative(OpenMpWaitPolicy.Variable));
    }
}
