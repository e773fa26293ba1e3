namespace ModelCompression.Recipes;

/// <summary>
/// "Did you mean …?" for a mistyped name (a recipe key, option, stage or architecture, a CLI verb or option): the
/// valid names within a small edit distance of what was typed. One place, so the recipe loader and the CLI suggest alike.
/// </summary>
public static class Suggestions
{
    /// <summary>
    /// The names in <paramref name="valid"/> closest to <paramref name="typed"/> (ties kept, in their given order), or
    /// none when nothing is close: at most one edit per three characters of the longer word (at least one edit), where
    /// an edit inserts, deletes or replaces a character or swaps two neighbours, and case differences are free.
    /// </summary>
    public static IReadOnlyList<string> Closest(string typed, IEnumerable<string> valid)
    {
        ArgumentNullException.ThrowIfNull(typed);
        ArgumentNullException.ThrowIfNull(valid);
        var best = new List<string>();
        var bestDistance = int.MaxValue;
        foreach (var name in valid.Distinct(StringComparer.Ordinal))
        {
            var distance = Distance(typed.ToLowerInvariant(), name.ToLowerInvariant());
            // Relative to length: "rn" for "run" is a slip, "fold" for "cold" a different word.
            if (distance > Math.Max(1, Math.Max(typed.Length, name.Length) / 3) || distance > bestDistance)
            {
                continue;
            }

            if (distance < bestDistance)
            {
                best.Clear();
                bestDistance = distance;
            }

            best.Add(name);
        }

        return best;
    }

    /// <summary>
    /// The end of an "unknown name" message: ": did you mean 'x'?" when a valid name is close, else
    /// ". {<paramref name="listTitle"/>}: a, b, c." listing every valid name.
    /// </summary>
    public static string Hint(string typed, IReadOnlyCollection<string> valid, string listTitle) => Hint(typed, valid, valid, listTitle);

    /// <summary>
    /// <see cref="Hint(string, IReadOnlyCollection{string}, string)"/> matching <paramref name="typed"/> against
    /// <paramref name="spellings"/> (names and their aliases) but listing only <paramref name="names"/>.
    /// </summary>
    public static string Hint(string typed, IEnumerable<string> spellings, IReadOnlyCollection<string> names, string listTitle)
    {
        var close = Closest(typed, spellings);
        return close.Count > 0
            ? $": did you mean {string.Join(" or ", close.Select(c => $"'{c}'"))}?"
            : $". {listTitle}: {string.Join(", ", names)}.";
    }

    /// <summary>
    /// The optimal-string-alignment (restricted Damerau-Levenshtein) distance: insertions, deletions, substitutions and
    /// swaps of two adjacent characters each cost one; ordinal comparison.
    /// </summary>
    public static int Distance(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        // Three rows suffice: a swap looks two rows back.
        var previous2 = new int[b.Length + 1];
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                var value = Math.Min(Math.Min(previous[j] + 1, current[j - 1] + 1), previous[j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    value = Math.Min(value, previous2[j - 2] + 1);
                }

                current[j] = value;
            }

            (previous2, previous, current) = (previous, current, previous2);
        }

        return previous[b.Length];
    }
}
