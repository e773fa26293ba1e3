namespace ModelCompression.Build;

/// <summary>
/// Shows the engine's progress and result where MSBuild's terminal logger (<c>-tl</c>, the default in an interactive
/// terminal) would hide them. That logger shows a task's messages, whatever their importance, only at detailed
/// verbosity and only once the project is done; MSBuild 18 has no progress API for tasks (dotnet/msbuild#6944), and
/// its live status lines are fed only by target names and test-runner events. So when the terminal logger draws on
/// this process's own stdout, the latest progress line is drawn on the empty line below its live area (the line
/// its cursor rests on, which its redraws leave alone and its erases clear), with the cursor saved and restored
/// so its redraws land where it expects; and the result lines are printed when this process exits, after the
/// logger's last line. In every other case (console logger, CI, redirected output, a worker node) nothing is
/// drawn: the task's messages are the plain lines.
/// </summary>
internal sealed class TerminalStatus
{
    // DECSC/DECRC (save and restore the cursor) around a carriage return and an erase of the whole line.
    private const string Save = "\u001b7";
    private const string Restore = "\u001b8";
    private const string EraseLine = "\r\u001b[2K";

    private static readonly List<string> AtExit = [];
    private static bool _registered;

    private readonly TextWriter _terminal;
    private bool _drawn;

    private TerminalStatus(TextWriter terminal) => _terminal = terminal;

    /// <summary>
    /// The status line when <paramref name="terminalLoggerEnabled"/> (MSBuild's <c>_MSBUILDTLENABLED</c>) is "1" and this
    /// process's stdout is the terminal it draws on (the entry node); otherwise null.
    /// </summary>
    public static TerminalStatus? TryCreate(string? terminalLoggerEnabled) =>
        terminalLoggerEnabled == "1" && !Console.IsOutputRedirected ? new TerminalStatus(Console.Out) : null;

    /// <summary>Draws <paramref name="text"/> as the status line (the engine writes a few lines a second at most).</summary>
    public void Show(string text)
    {
        // One line only: a wrapped line would move the cursor the logger counts on.
        var width = Math.Max(20, TerminalWidth() - 1);
        var line = "  " + text.Replace('\t', ' ');
        if (line.Length > width)
        {
            line = line[..(width - 1)] + "…";
        }

        Write(Save + EraseLine + line + Restore);
        _drawn = true;
    }

    /// <summary>Erases the status line.</summary>
    public void Clear()
    {
        if (_drawn)
        {
            Write(Save + EraseLine + Restore);
            _drawn = false;
        }
    }

    /// <summary>Prints <paramref name="lines"/> when this process exits, after the terminal logger's summary.</summary>
    public void PrintAtExit(IEnumerable<string> lines)
    {
        lock (AtExit)
        {
            AtExit.AddRange(lines);
            if (_registered)
            {
                return;
            }

            _registered = true;
            var terminal = _terminal;
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                lock (AtExit)
                {
                    foreach (var line in AtExit)
                    {
                        terminal.WriteLine(line);
                    }

                    terminal.Flush();
                }
            };
        }
    }

    private void Write(string text)
    {
        // One write, so the logger's own frame (written by another thread) cannot land inside it.
        _terminal.Write(text);
        _terminal.Flush();
    }

    private static int TerminalWidth()
    {
        try
        {
            return Console.WindowWidth > 0 ? Console.WindowWidth : 80;
        }
        catch (IOException)
        {
            return 80;
        }
    }
}
