using ModelCompression.Threading;

namespace ModelCompression.Torch.Tests.Threading;

/// <summary>The budget reader against cgroup files laid out as Linux lays them out, under a temporary root.</summary>
public sealed class CpuBudgetTests : IDisposable
{
    private const string V2Mount = "41 31 0:38 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate";
    private const string V1CpuMount = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct";
    private const string V1MemoryMount = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory";

    private readonly string _root = Directory.CreateTempSubdirectory("mc-cpubudget-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void Cgroup_v2_without_a_quota_leaves_the_affinity()
    {
        Write("proc/self/cgroup", "0::/user.slice/app.scope");
        Write("proc/self/mountinfo", V2Mount);
        Write("sys/fs/cgroup/user.slice/app.scope/cpu.max", "max 100000");

        var budget = CpuBudget.Read(_root, affinity: 4);

        Assert.Equal(4, budget.Threads);
        Assert.Contains("affinity", budget.Source, StringComparison.Ordinal);
    }

    [Fact]
    public void A_fractional_cgroup_v2_quota_rounds_up_and_names_its_file()
    {
        Write("proc/self/cgroup", "0::/app");
        Write("proc/self/mountinfo", V2Mount);
        Write("sys/fs/cgroup/app/cpu.max", "150000 100000");

        var budget = CpuBudget.Read(_root, affinity: 8);

        Assert.Equal(2, budget.Threads);
        Assert.Contains("150000/100000", budget.Source, StringComparison.Ordinal);
        Assert.Contains(Path.Combine("sys", "fs", "cgroup", "app", "cpu.max"), budget.Source, StringComparison.Ordinal);
    }

    [Fact]
    public void A_quota_on_a_parent_cgroup_binds_the_child()
    {
        Write("proc/self/cgroup", "0::/kubepods/pod1/container");
        Write("proc/self/mountinfo", V2Mount);
        Write("sys/fs/cgroup/kubepods/pod1/container/cpu.max", "max 100000");
        Write("sys/fs/cgroup/kubepods/pod1/cpu.max", "50000 100000");
        Write("sys/fs/cgroup/kubepods/cpu.max", "400000 100000");

        Assert.Equal(1, CpuBudget.Read(_root, affinity: 16).Threads);
    }

    [Fact]
    public void Inside_a_container_the_membership_path_is_taken_relative_to_the_mount_root()
    {
        // The process sees the host's path in /proc/self/cgroup, but only its own cgroup is mounted.
        Write("proc/self/cgroup", "0::/docker/abc123");
        Write("proc/self/mountinfo", "41 31 0:38 /docker/abc123 /sys/fs/cgroup ro,relatime - cgroup2 cgroup2 rw");
        Write("sys/fs/cgroup/cpu.max", "300000 100000");

        Assert.Equal(3, CpuBudget.Read(_root, affinity: 32).Threads);
    }

    [Fact]
    public void Cgroup_v1_cfs_quota_is_read_and_minus_one_means_none()
    {
        Write("proc/self/cgroup", "5:memory:/job\n4:cpu,cpuacct:/job\n0::/");
        Write("proc/self/mountinfo", V1MemoryMount + "\n" + V1CpuMount);
        Write("sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "250000");
        Write("sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_period_us", "100000");
        Write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1");
        Write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000");

        var budget = CpuBudget.Read(_root, affinity: 8);
        Assert.Equal(3, budget.Threads);
        Assert.Contains("250000/100000", budget.Source, StringComparison.Ordinal);

        Write("sys/fs/cgroup/cpu,cpuacct/job/cpu.cfs_quota_us", "-1");
        Assert.Equal(8, CpuBudget.Read(_root, affinity: 8).Threads);
    }

    [Fact]
    public void Affinity_below_the_quota_wins()
    {
        Write("proc/self/cgroup", "0::/app");
        Write("proc/self/mountinfo", V2Mount);
        Write("sys/fs/cgroup/app/cpu.max", "400000 100000");

        var budget = CpuBudget.Read(_root, affinity: 2);

        Assert.Equal(2, budget.Threads);
        Assert.Contains("affinity (2 CPUs)", budget.Source, StringComparison.Ordinal);
    }

    [Fact]
    public void No_cgroup_files_means_the_affinity_and_garbage_quotas_are_ignored()
    {
        Assert.Equal(6, CpuBudget.Read(_root, affinity: 6).Threads);

        Write("proc/self/cgroup", "0::/app");
        Write("proc/self/mountinfo", V2Mount);
        Write("sys/fs/cgroup/app/cpu.max", "lots 0");
        Assert.Equal(6, CpuBudget.Read(_root, affinity: 6).Threads);
    }

    [Fact]
    public void The_command_line_overrides_the_recipe_which_overrides_detection()
    {
        var detected = new CpuBudget(7, "CPU affinity (7 CPUs)");

        Assert.Equal(new CpuBudget(3, "--threads"), CpuBudget.Resolve(3, 5, () => detected));
        Assert.Equal(new CpuBudget(5, "the recipe's 'threads'"), CpuBudget.Resolve(0, 5, () => detected));
        Assert.Same(detected, CpuBudget.Resolve(0, 0, () => detected));
    }

    [Fact]
    public void On_this_machine_the_budget_agrees_with_dotnets_processor_count()
    {
        // .NET applies the same limits (affinity, cgroup quota rounded up) to Environment.ProcessorCount on Linux
        // (unless DOTNET_PROCESSOR_COUNT overrides it, which CI does not set).

        Assert.Equal(Environment.ProcessorCount, CpuBudget.Detect().Threads);
    }

    private void Write(string relative, string content)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content + "\n");
    }
}
