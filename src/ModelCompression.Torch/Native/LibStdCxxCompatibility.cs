namespace ModelCompression.Torch.Native;

/// <summary>
/// What a library needs from libstdc++ compared with what a host libstdc++ defines, and whether the gap can be
/// closed by marking the missing versions weak.
/// </summary>
/// <param name="MissingVersions">Versions the library needs from libstdc++ that the host does not define.</param>
/// <param name="SymbolsByMissingVersion">For each missing version, the undefined symbols bound to it.</param>
/// <param name="UnexpectedSymbols">Symbols bound to a missing version that are not known to be harmless: if any, patching is refused.</param>
public sealed record LibStdCxxCheck(
    IReadOnlyList<string> MissingVersions,
    IReadOnlyDictionary<string, IReadOnlyList<string>> SymbolsByMissingVersion,
    IReadOnlyList<string> UnexpectedSymbols)
{
    /// <summary>The host defines everything: the library loads as it is.</summary>
    public bool IsCompatible => MissingVersions.Count == 0;

    /// <summary>Missing versions exist but only harmless symbols need them: a weak-version copy will load and work.</summary>
    public bool CanPatch => MissingVersions.Count > 0 && UnexpectedSymbols.Count == 0;
}

/// <summary>Checks a library's libstdc++ version needs against a host libstdc++.</summary>
public static class LibStdCxxCompatibility
{
    /// <summary>
    /// Symbols that may be left unresolved. GCC 13's &lt;iostream&gt; references
    /// <c>std::ios_base_library_init()</c> (GLIBCXX_3.4.32) only to pull the new library's stream initialisation
    /// into the link; nothing calls it, and older libstdc++ initialise the streams themselves.
    /// </summary>
    public static IReadOnlySet<string> HarmlessSymbols { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "_ZSt21ios_base_library_initv",
    };

    /// <summary>Whether a needed-file name is libstdc++ (<c>libstdc++.so.6</c>).</summary>
    public static bool IsLibStdCxx(string fileName) =>
        fileName.StartsWith("libstdc++.so", StringComparison.Ordinal);

    /// <summary>Compares what <paramref name="library"/> needs from libstdc++ with <paramref name="hostVersions"/>.</summary>
    public static LibStdCxxCheck Check(ElfImage library, IEnumerable<string> hostVersions)
    {
        ArgumentNullException.ThrowIfNull(library);
        var defined = new HashSet<string>(hostVersions, StringComparer.Ordinal);
        var missing = new List<string>();
        var symbols = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        foreach (var need in library.VersionNeeds)
        {
            if (!IsLibStdCxx(need.File) || defined.Contains(need.Version) || symbols.ContainsKey(need.Version))
            {
                continue;
            }

            var users = library.SymbolsNeeding(need);
            missing.Add(need.Version);
            symbols[need.Version] = users;
            unexpected.AddRange(users.Where(s => !HarmlessSymbols.Contains(s)).Select(s => $"{s}@{need.Version}"));
        }

        return new LibStdCxxCheck(missing, symbols, unexpected);
    }
}
