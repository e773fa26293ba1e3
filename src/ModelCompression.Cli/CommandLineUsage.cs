using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.Globalization;
using ModelCompression.Recipes;

namespace ModelCompression.Cli;

/// <summary>
/// Usage mistakes, each named: System.CommandLine binds an unknown option such as <c>run --version</c> to the recipe
/// argument, shows the root help (exit 0) for an unknown verb followed by <c>--help</c>, and calls both "Unrecognized
/// command or argument". Here an unknown verb or option is reported by name, with the closest valid one.
/// </summary>
internal static class CommandLineUsage
{
    /// <summary>
    /// Adds the exit codes to the help of <paramref name="command"/> and every command under it (the help option is
    /// recursive: its one action serves them all).
    /// </summary>
    public static void Configure(Command command)
    {
        if (command.Options.OfType<HelpOption>().FirstOrDefault() is { Action: HelpAction help } option)
        {
            option.Action = new HelpWithExitCodes(help);
        }
    }

    /// <summary>Every usage problem of <paramref name="parse"/>, one message each; empty when the command line is fine.</summary>
    public static IReadOnlyList<string> Problems(ParseResult parse)
    {
        ArgumentNullException.ThrowIfNull(parse);
        // The command each token belongs to, followed along the line: "compres run x.yaml" goes wrong at "compres".
        var command = parse.RootCommandResult.Command;
        var problems = new List<string>();
        var unexpected = new List<string>();
        var afterDoubleDash = false;
        Option? lastOption = null;
        string? unknownOption = null;
        foreach (var token in parse.Tokens)
        {
            switch (token.Type)
            {
                case TokenType.DoubleDash:
                    afterDoubleDash = true;
                    continue;
                case TokenType.Command:
                    command = command.Subcommands.FirstOrDefault(c => c.Name == token.Value || c.Aliases.Contains(token.Value)) ?? command;
                    lastOption = null;
                    unknownOption = null;
                    continue;
                case TokenType.Option:
                    lastOption = OptionsOf(command).FirstOrDefault(o => o.Name == token.Value || o.Aliases.Contains(token.Value));
                    unknownOption = null;
                    continue;
                case TokenType.Argument:
                    break;
                default:
                    lastOption = null;
                    unknownOption = null;
                    continue;
            }

            var value = token.Value;
            var takenByOption = lastOption is not null && TakesValue(lastOption, value);
            lastOption = null;
            if (takenByOption)
            {
                continue;
            }

            if (command.Subcommands.Count > 0)
            {
                // A command that only groups others ('dotnet compress', 'baseline') takes no arguments: the first is a
                // mistyped verb, and the rest of the line is meaningless after it.
                problems.Add(LooksLikeOption(value) && !afterDoubleDash ? UnknownOption(value, command, parse) : UnknownCommand(value, command));
                return problems;
            }

            if (!afterDoubleDash && LooksLikeOption(value))
            {
                problems.Add(UnknownOption(value, command, parse));
                unknownOption = value;
                continue;
            }

            // The value of an unknown option just reported ("--colour red") is the same mistake: one message.
            var valueOfUnknownOption = unknownOption is not null;
            unknownOption = null;
            if (!valueOfUnknownOption && parse.UnmatchedTokens.Contains(value, StringComparer.Ordinal))
            {
                unexpected.Add($"Unexpected argument '{value}' for '{CommandPath(command)}'.");
            }
        }

        // After an unknown option that took the place of an argument, the real argument looks like an extra one, and
        // the command's own checks (a recipe or --recipes) see a line the user did not write: only the option is news.
        var unknownOptions = problems.Count > 0;
        if (!unknownOptions)
        {
            problems.AddRange(unexpected);
        }

        // System.CommandLine's "Unrecognized command or argument" for the tokens named above says less.
        problems.AddRange(parse.Errors
            .Where(e => !parse.UnmatchedTokens.Any(u => e.Message.Contains($"'{u}'", StringComparison.Ordinal)))
            .Where(e => !unknownOptions || e.SymbolResult is OptionResult || e.SymbolResult?.Parent is OptionResult)
            .Select(e => e.Message));
        return problems;
    }

    /// <summary>Whether the token after <paramref name="option"/> is its value rather than a new option or argument.</summary>
    private static bool TakesValue(Option option, string value)
    {
        if (option.Arity.MaximumNumberOfValues == 0)
        {
            return false;
        }

        // A flag takes "true"/"false" after it, nothing else: "--gate-failures-as-warnings --colour" is two options.
        return option.ValueType != typeof(bool) || bool.TryParse(value, out _);
    }

    private static bool LooksLikeOption(string value) =>
        value.Length > 1 && value[0] == '-' && !double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _);

    private static string UnknownCommand(string value, Command command)
    {
        var verbs = command.Subcommands.Where(c => !c.Hidden).SelectMany(c => c.Aliases.Prepend(c.Name)).ToList();
        return $"Unknown command '{value}' for '{CommandPath(command)}'{Suggestions.Hint(value, verbs, "Commands")}";
    }

    private static string UnknownOption(string value, Command command, ParseResult parse)
    {
        var name = value.Split('=', ':')[0];
        var visible = OptionsOf(command).Where(o => !o.Hidden).ToList();
        if (parse.RootCommandResult.Command != command
            && OptionsOf(parse.RootCommandResult.Command).FirstOrDefault(o => o.Name == name || o.Aliases.Contains(name)) is { } rootOption)
        {
            return $"Unknown option '{name}' for '{CommandPath(command)}': {rootOption.Name} is an option of 'dotnet compress' itself ('dotnet compress {rootOption.Name}').";
        }

        // Matched against every alias ("-o" as well as "--output"); listed by name only.
        var spellings = visible.SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith('-'));
        return $"Unknown option '{name}' for '{CommandPath(command)}'{Suggestions.Hint(name, spellings, [.. visible.Select(o => o.Name)], "Options")}";
    }

    /// <summary>The options <paramref name="command"/> takes: its own and the recursive ones of the commands above it.</summary>
    private static IEnumerable<Option> OptionsOf(Command command) =>
        command.Options.Concat(command.Parents.OfType<Command>().SelectMany(p => p.Options.Where(o => o.Recursive)));

    private static string CommandPath(Command command)
    {
        var names = new List<string>();
        for (Command? each = command; each is not null; each = each.Parents.OfType<Command>().FirstOrDefault())
        {
            names.Add(each is RootCommand ? "dotnet compress" : each.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }

    /// <summary>The standard help, then the exit codes (scripts branch on them; System.CommandLine's help has no place for them).</summary>
    private sealed class HelpWithExitCodes(HelpAction help) : SynchronousCommandLineAction
    {
        public override bool ClearsParseErrors => true;

        public override int Invoke(ParseResult parseResult)
        {
            var code = help.Invoke(parseResult);
            var output = parseResult.InvocationConfiguration.Output;
            output.WriteLine("Exit codes:");
            output.WriteLine($"  {ExitCodes.Ok}  success (every gate passed, or --gate-failures-as-warnings)");
            output.WriteLine($"  {ExitCodes.Error}  error: a recipe, model, data or environment problem (MC1xxx, MC2xxx, MC4xxx, MC5xxx on stderr)");
            output.WriteLine($"  {ExitCodes.Usage}  usage error: the command line is wrong (MC1010 on stderr)");
            output.WriteLine($"  {ExitCodes.GateFailed}  a gate failed (MC3xxx on stderr); the model was not replaced");
            output.WriteLine();
            return code;
        }
    }
}
