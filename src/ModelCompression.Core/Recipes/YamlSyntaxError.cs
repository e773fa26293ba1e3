using ModelCompression.Diagnostics;
using YamlDotNet.Core;
using YamlDotNet.Core.Tokens;

namespace ModelCompression.Recipes;

/// <summary>
/// Places a YAML syntax error (MC1001) where the mistake is. YamlDotNet 18.1 reports a tab in the indentation at the
/// start of the mapping it breaks (a tab on line 3 of a recipe comes as line 1, column 1) or at the scalar before it,
/// and an unclosed '{' or '[' at the end of the file, or as an <see cref="InvalidOperationException"/> with no position at all.
/// </summary>
internal static class YamlSyntaxError
{
    /// <summary>The diagnostic for <paramref name="e"/>, thrown while reading <paramref name="path"/> (whose text is <paramref name="text"/>).</summary>
    public static Diagnostic From(string path, string text, YamlException e)
    {
        var message = $"Invalid YAML: {e.InnerException?.Message ?? e.Message}";
        var line = (int)e.Start.Line;
        var column = (int)e.Start.Column;
        if (message.Contains("tab", StringComparison.OrdinalIgnoreCase) && TabInIndentation(text, line) is var (tabLine, tabColumn))
        {
            return Diagnostic.Error(DiagnosticCodes.RecipeSyntax, "Invalid YAML: a tab in the indentation; YAML indents with spaces only.", path, tabLine, tabColumn);
        }

        // Found only at the end of the file ("did not find expected ',' or ']'"): the mistake is what was left open.
        if (e.Start.Index >= text.TrimEnd().Length && Unclosed(path, text) is { } unclosed)
        {
            return unclosed;
        }

        return Diagnostic.Error(DiagnosticCodes.RecipeSyntax, message, path, line, column);
    }

    /// <summary>
    /// The diagnostic for a file that ends inside an open flow collection: at the innermost '{' or '[' never closed,
    /// found by scanning the tokens again; at the end of the file when the scan finds none.
    /// </summary>
    public static Diagnostic UnexpectedEnd(string path, string text)
    {
        if (Unclosed(path, text) is { } unclosed)
        {
            return unclosed;
        }

        var lines = Math.Max(1, text.Split('\n').Length - (text.EndsWith('\n') ? 1 : 0));
        return Diagnostic.Error(DiagnosticCodes.RecipeSyntax, "Invalid YAML: the file ends unexpectedly (is a quote left open?).", path, lines, 1);
    }

    /// <summary>The innermost '{' or '[' of <paramref name="text"/> never closed, as a diagnostic at it; null when all are closed.</summary>
    private static Diagnostic? Unclosed(string path, string text)
    {
        var open = new Stack<(char Bracket, Mark Start)>();
        try
        {
            var scanner = new Scanner(new StringReader(text));
            // A bound on the tokens, so a scanner that stops advancing on a broken file cannot hang the build.
            for (var tokens = 0; tokens <= text.Length + 16 && scanner.MoveNext(); tokens++)
            {
                switch (scanner.Current)
                {
                    case FlowMappingStart start:
                        open.Push(('{', start.Start));
                        break;
                    case FlowSequenceStart start:
                        open.Push(('[', start.Start));
                        break;
                    case FlowMappingEnd or FlowSequenceEnd when open.Count > 0:
                        open.Pop();
                        break;
                }
            }
        }
        catch (Exception e) when (e is YamlException or InvalidOperationException)
        {
            // Where it stopped is where the file ran out; what is still open is the answer.
        }

        if (open.TryPeek(out var unclosed))
        {
            var closing = unclosed.Bracket == '{' ? '}' : ']';
            return Diagnostic.Error(
                DiagnosticCodes.RecipeSyntax,
                $"Invalid YAML: this '{unclosed.Bracket}' is never closed: the file ends before its '{closing}'.",
                path,
                (int)unclosed.Start.Line,
                (int)unclosed.Start.Column);
        }

        return null;
    }

    /// <summary>The first tab in the leading whitespace of a line at or after <paramref name="fromLine"/> (1-based line and column).</summary>
    private static (int Line, int Column)? TabInIndentation(string text, int fromLine)
    {
        var lines = text.Split('\n');
        for (var i = Math.Max(0, fromLine - 1); i < lines.Length; i++)
        {
            var line = lines[i];
            if (line.Trim().Length == 0)
            {
                // Whitespace-only lines carry no indentation.
                continue;
            }

            for (var c = 0; c < line.Length && (line[c] == ' ' || line[c] == '\t'); c++)
            {
                if (line[c] == '\t')
                {
                    return (i + 1, c + 1);
                }
            }
        }

        return null;
    }
}
