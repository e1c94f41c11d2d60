using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;

namespace Onex.Cli.Usage;

/// <summary>
/// Turns System.CommandLine's parse errors into the one line <c>onex</c> prints for a usage error: what is wrong, and
/// what to type instead (a close option name when there is one, else the command's <c>--help</c>).
/// </summary>
internal static partial class UsageErrors
{
    /// <summary>The line for the first parse error of <paramref name="parse"/> (the rest often follow from it).</summary>
    public static string Line(ParseResult parse)
    {
        var command = parse.CommandResult.Command;
        var path = CommandPath(parse.CommandResult);
        // A token we could not place says most (a typo); a bad value next; what is missing often follows from those.
        var error = parse.Errors.OrderBy(Rank).First();
        var message = Describe(error.Message, command, path).TrimEnd('.');
        var more = parse.Errors.Count > 1 ? $" ({parse.Errors.Count - 1} more problem{(parse.Errors.Count > 2 ? "s" : "")} on this line)" : "";
        return $"onex: {message}{more}; see '{path} --help'.";
    }

    private static int Rank(ParseError error) =>
        error.Message.StartsWith("Unrecognized", StringComparison.Ordinal) ? 0
        : error.Message.StartsWith("Required", StringComparison.Ordinal) || error.Message.EndsWith("is required.", StringComparison.Ordinal) ? 2
        : 1;

    /// <summary>The full name of a command as typed, e.g. <c>onex ports lease</c>.</summary>
    public static string CommandPath(CommandResult result)
    {
        var names = new List<string>();
        for (SymbolResult? current = result; current is not null; current = current.Parent)
            if (current is CommandResult { Command: var command } && command is not RootCommand)
                names.Add(command.Name);
        names.Add("onex");
        names.Reverse();
        return string.Join(' ', names);
    }

    private static string Describe(string message, Command command, string path)
    {
        message = Flatten(message);
        if (Unrecognized().Match(message) is { Success: true } unknown)
        {
            var token = unknown.Groups[1].Value;
            if (token.StartsWith('-'))
                return $"'{path}' has no option '{token}'{Suggestion(token, command.Options.Where(o => !o.Hidden).SelectMany(o => o.Aliases.Prepend(o.Name)))}";
            return command.Subcommands.Count > 0
                ? $"'{path}' has no command '{token}'{Suggestion(token, command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}"
                : $"'{path}' takes no argument '{token}'";
        }
        if (message.StartsWith("Required command was not provided", StringComparison.Ordinal))
            return $"'{path}' needs a command: {string.Join(", ", command.Subcommands.Where(c => !c.Hidden).Select(c => c.Name))}";
        if (RequiredOption().Match(message) is { Success: true } required)
            return $"'{path}' needs {required.Groups[1].Value} {HelpNameOf(command, required.Groups[1].Value)}".TrimEnd();
        if (MissingOptionValue().Match(message) is { Success: true } missingValue)
            return $"{missingValue.Groups[1].Value} needs a value: {missingValue.Groups[1].Value} {HelpNameOf(command, missingValue.Groups[1].Value)}".TrimEnd();
        if (message.StartsWith("Required argument missing for command", StringComparison.Ordinal))
            return $"'{path}' needs {string.Join(" ", command.Arguments.Select(a => a.Name))}";
        // A conversion System.CommandLine did itself (only options without our own parser): never show CLR type names.
        return ExpectedType().Replace(message.TrimEnd('.'), "");
    }

    private static string HelpNameOf(Command command, string optionName) =>
        command.Options.FirstOrDefault(o => o.Name == optionName || o.Aliases.Contains(optionName)) is { } option
            ? option.HelpName ?? "VALUE"
            : "";

    /// <summary>The closest known name within two edits, as " (did you mean X?)".</summary>
    private static string Suggestion(string token, IEnumerable<string> known)
    {
        var closest = known.Select(name => (name, distance: Quickenshtein.Levenshtein.GetDistance(token.Split('=', ':')[0], name)))
            .Where(c => c.distance <= 2).OrderBy(c => c.distance).FirstOrDefault();
        return closest.name is null ? "" : $" (did you mean '{closest.name}'?)";
    }

    private static string Flatten(string message) => Whitespace().Replace(message, " ").Trim();

    [GeneratedRegex(@"^Unrecognized command or argument '(.*)'\.$")]
    private static partial Regex Unrecognized();

    [GeneratedRegex(@"^Option '(.*)' is required\.$")]
    private static partial Regex RequiredOption();

    [GeneratedRegex(@"^Required argument missing for option: '(.*)'\.$")]
    private static partial Regex MissingOptionValue();

    [GeneratedRegex(@" as expected type '[^']*'")]
    private static partial Regex ExpectedType();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
