using System.Runtime.InteropServices;

namespace ModelCompression.Threading;

/// <summary>
/// How libtorch's OpenMP threads (GNU libgomp) wait for work between parallel regions. libgomp's default is to
/// spin for about 300,000 iterations before sleeping; on a machine whose CPUs are busy with other processes
/// (a CI agent running builds beside us), the spinning threads burn the time slices that the thread holding the
/// work needs, and a run slows down many times over (bench/README.md, "Threads": the sample beside one busy
/// process took 2.5x its idle time with spinning, 1.15x without). Sleeping at once costs nothing measurable on
/// an idle machine for the engine's work, so the engine asks for PASSIVE unless the user chose a policy.
/// </summary>
public static class OpenMpWaitPolicy
{
    /// <summary>The variable libgomp reads when it is loaded.</summary>
    public const string Variable = "OMP_WAIT_POLICY";

    /// <summary>libgomp's own spin count: a user who set it chose how threads wait, so the engine leaves both alone.</summary>
    public const string SpinCountVariable = "GOMP_SPINCOUNT";

    /// <summary>
    /// The value the engine sets for <see cref="Variable"/>, or null to leave the environment alone because the
    /// user set <see cref="Variable"/> or <see cref="SpinCountVariable"/> (read through <paramref name="getVariable"/>).
    /// </summary>
    public static string? Choose(Func<string, string?> getVariable)
    {
        ArgumentNullException.ThrowIfNull(getVariable);
        return string.IsNullOrEmpty(getVariable(Variable)) && string.IsNullOrEmpty(getVariable(SpinCountVariable))
            ? "PASSIVE"
            : null;
    }

    /// <summary>
    /// Sets <see cref="Variable"/> in the native environment, where libgomp reads it, and in .NET's copy, which
    /// child processes inherit. Must run before libtorch (and with it libgomp) is loaded: libgomp reads its
    /// settings once, in its library constructor. .NET keeps its own copy of the environment on Unix, so
    /// <see cref="Environment.SetEnvironmentVariable(string, string)"/> alone would never reach native code.
    /// </summary>
    /// <returns>What was chosen: the value set, or null when the user's setting was kept.</returns>
    public static string? ApplyBeforeLoad()
    {
        var value = Choose(Environment.GetEnvironmentVariable);
        if (value is null)
        {
            return null;
        }

        Environment.SetEnvironmentVariable(Variable, value);
        if (!OperatingSystem.IsWindows() && SetNative(Variable, value, 1) != 0)
        {
            // Not fatal: threads then spin as libgomp's default has them.
            return null;
        }

        return value;
    }

    /// <summary>The native environment's value of <paramref name="name"/> (what libgomp sees), for doctor and tests.</summary>
    public static string? ReadNative(string name) =>
        OperatingSystem.IsWindows() ? Environment.GetEnvironmentVariable(name) : Marshal.PtrToStringUTF8(GetNative(name));

    // DllImport rather than LibraryImport: the source generator would need unsafe code enabled for the project.
    [DllImport("libc", EntryPoint = "setenv", CharSet = CharSet.Ansi, ExactSpelling = true)]
    private static extern int SetNative(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "getenv", CharSet = CharSet.Ansi, ExactSpelling = true)]
    private static extern IntPtr GetNative(string name);
}
