using System.Globalization;
using System.Runtime.InteropServices;

namespace ModelCompression.Threading;

/// <summary>
/// How many threads the engine's compute pools (libtorch, ONNX Runtime) use, and where that number came from
/// (shown by <c>dotnet compress doctor</c> and in a run's log).
/// </summary>
/// <param name="Threads">The thread count, at least 1.</param>
/// <param name="Source">Why this many: the option that set it, or the limit (cgroup CPU quota, CPU affinity) that bounds this process.</param>
public sealed record CpuBudget(int Threads, string Source)
{
    /// <summary>
    /// The CPUs this process may use on Linux: the fewest of its CPU affinity and every cgroup CPU quota above it
    /// (cgroup v2 <c>cpu.max</c>, v1 <c>cpu.cfs_quota_us</c>/<c>cpu.cfs_period_us</c>), a fractional quota rounded
    /// up. .NET's <see cref="Environment.ProcessorCount"/> honours the same limits, but libtorch's OpenMP pool and
    /// ONNX Runtime's default pool size themselves from the cores of the machine and ignore a quota; this reader
    /// also says which limit applies. Elsewhere it is <see cref="Environment.ProcessorCount"/>.
    /// </summary>
    public static CpuBudget Detect() =>
        OperatingSystem.IsLinux()
            ? Read("/", AffinityCount())
            : new CpuBudget(Math.Max(1, Environment.ProcessorCount), $"{Environment.ProcessorCount} CPUs (Environment.ProcessorCount)");

    /// <summary>
    /// The budget given <paramref name="affinity"/> CPUs in this process's affinity mask and the cgroup files under
    /// <paramref name="root"/> (the file system root; a folder laid out like it in tests): <c>proc/self/cgroup</c>,
    /// <c>proc/self/mountinfo</c> and the cgroup folders the mounts name. Missing or unreadable files mean no limit.
    /// </summary>
    public static CpuBudget Read(string root, int affinity)
    {
        var best = new CpuBudget(Math.Max(1, affinity), $"CPU affinity ({affinity} CPU{(affinity == 1 ? string.Empty : "s")})");
        foreach (var (cpus, source) in Quotas(root))
        {
            if (cpus < best.Threads)
            {
                best = new CpuBudget(cpus, source);
            }
        }

        return best;
    }

    /// <summary>
    /// The budget a run uses: <paramref name="commandLine"/> (<c>--threads</c>) when above 0, else the recipe's
    /// <paramref name="recipe"/> (<c>threads:</c>) when above 0, else <paramref name="detected"/>. The command line
    /// wins because it is what a person or CI step chose for this machine; the recipe travels between machines.
    /// </summary>
    public static CpuBudget Resolve(int commandLine, int recipe, Func<CpuBudget> detected) =>
        commandLine > 0 ? new CpuBudget(commandLine, "--threads")
        : recipe > 0 ? new CpuBudget(recipe, "the recipe's 'threads'")
        : detected();

    /// <summary>Each CPU quota of a cgroup this process is in (and of the cgroups above it), as whole CPUs rounded up.</summary>
    private static IEnumerable<(int Cpus, string Source)> Quotas(string root)
    {
        var memberships = ReadLines(Path.Combine(root, "proc/self/cgroup"));
        var mounts = ReadLines(Path.Combine(root, "proc/self/mountinfo")).Select(Mount.Parse).OfType<Mount>().ToList();
        foreach (var line in memberships)
        {
            // "hierarchy-id:controllers:path"; v2 is "0::path", v1 lists its controllers ("4:cpu,cpuacct:/x").
            var parts = line.Split(':', 3);
            if (parts.Length != 3)
            {
                continue;
            }

            var v2 = parts[0] == "0" && parts[1].Length == 0;
            if (!v2 && !parts[1].Split(',').Contains("cpu"))
            {
                continue;
            }

            var mount = mounts.FirstOrDefault(m => v2 ? m.Type == "cgroup2" : m.Type == "cgroup" && m.Options.Contains("cpu"));
            if (mount is null)
            {
                continue;
            }

            // Inside a container the membership path is the host's; the mount's root says which part of it is visible.
            var relative = parts[2].StartsWith(mount.Root, StringComparison.Ordinal) ? parts[2][mount.Root.Length..] : string.Empty;
            var top = Path.TrimEndingDirectorySeparator(Path.Combine(root, mount.Point.TrimStart('/')));
            var dir = Path.TrimEndingDirectorySeparator(Path.Combine(top, relative.TrimStart('/')));
            // A limit anywhere above the process's own cgroup binds it too.
            while (true)
            {
                if ((v2 ? ReadCpuMax(dir) : ReadCfs(dir)) is { } quota)
                {
                    yield return quota;
                }

                if (dir.Length <= top.Length)
                {
                    break;
                }

                dir = Path.GetDirectoryName(dir)!;
            }
        }
    }

    /// <summary>cgroup v2: <c>cpu.max</c> is "quota period" or "max period".</summary>
    private static (int, string)? ReadCpuMax(string dir)
    {
        var file = Path.Combine(dir, "cpu.max");
        var fields = ReadLines(file).FirstOrDefault()?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields is [var quota, var period] ? Cpus(quota, period, $"cgroup CPU quota {quota}/{period} µs ({file})") : null;
    }

    /// <summary>cgroup v1: <c>cpu.cfs_quota_us</c> (-1 for none) over <c>cpu.cfs_period_us</c>.</summary>
    private static (int, string)? ReadCfs(string dir)
    {
        var quotaFile = Path.Combine(dir, "cpu.cfs_quota_us");
        var quota = ReadLines(quotaFile).FirstOrDefault()?.Trim();
        var period = ReadLines(Path.Combine(dir, "cpu.cfs_period_us")).FirstOrDefault()?.Trim();
        return quota is null || period is null ? null : Cpus(quota, period, $"cgroup CPU quota {quota}/{period} µs ({quotaFile})");
    }

    private static (int, string)? Cpus(string quota, string period, string source)
    {
        if (!long.TryParse(quota, NumberStyles.Integer, CultureInfo.InvariantCulture, out var q) || q <= 0
            || !long.TryParse(period, NumberStyles.Integer, CultureInfo.InvariantCulture, out var p) || p <= 0)
        {
            // "max" or -1: no quota here.
            return null;
        }

        // 1.5 CPUs of quota keeps two threads busy part of the time; one thread would leave half a CPU unused.
        return ((int)Math.Max(1, Math.Min(int.MaxValue, (q + p - 1) / p)), source);
    }

    private static string[] ReadLines(string file)
    {
        try
        {
            return File.Exists(file) ? File.ReadAllLines(file) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary>The CPUs in this process's affinity mask (sched_getaffinity), or <see cref="Environment.ProcessorCount"/> when it cannot be read.</summary>
    private static int AffinityCount()
    {
        // 1024 CPUs, as glibc's cpu_set_t; the kernel fails with EINVAL when the machine has more.
        var mask = new byte[128];
        if (sched_getaffinity(0, mask.Length, mask) != 0)
        {
            return Environment.ProcessorCount;
        }

        return mask.Sum(b => System.Numerics.BitOperations.PopCount(b));
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_getaffinity(int pid, nint size, byte[] mask);

    /// <summary>One line of /proc/self/mountinfo: "id parent major:minor root mountpoint options ... - type source superoptions".</summary>
    private sealed record Mount(string Root, string Point, string Type, string[] Options)
    {
        public static Mount? Parse(string line)
        {
            var dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0)
            {
                return null;
            }

            var head = line[..dash].Split(' ');
            var tail = line[(dash + 3)..].Split(' ');
            return head.Length < 5 || tail.Length < 1
                ? null
                : new Mount(Unescape(head[3]), Unescape(head[4]), tail[0], tail.Length > 2 ? tail[2].Split(',') : []);
        }

        // mountinfo writes space, tab, newline and backslash in paths as octal escapes (\040 ...).
        private static string Unescape(string path) =>
            System.Text.RegularExpressions.Regex.Replace(path, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString());
    }
}
