using System.Reflection;

namespace ModelCompression.Common;

/// <summary>Facts about this build of the engine.</summary>
public static class EngineInfo
{
    /// <summary>
    /// The engine version with its commit, part of every cache key: a new engine never trusts an old cache.
    /// </summary>
    public static string Version { get; } =
        typeof(EngineInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "0";
}
