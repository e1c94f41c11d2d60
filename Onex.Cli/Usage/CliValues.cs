using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Onex.Bus;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Zmq;

namespace Onex.Cli.Usage;

/// <summary>
/// Options whose values are checked while parsing, with messages that say what is wrong and what to type instead
/// (System.CommandLine's own conversion errors name CLR types, e.g. <c>System.Nullable`1[System.Double]</c>).
/// </summary>
internal static class CliValues
{
    /// <summary>A whole number from <paramref name="min"/> to <paramref name="max"/>; required unless it has a default.</summary>
    public static Option<int> Number(string name, string helpName, string description, int min, int max = int.MaxValue, int? defaultValue = null)
    {
        var option = new Option<int>(name) { Description = description, HelpName = helpName, CustomParser = result => ParseNumber(result, name, min, max) ?? 0 };
        if (defaultValue is { } value) option.DefaultValueFactory = _ => value;
        else option.Required = true;
        return option;
    }

    /// <summary>An optional whole number from <paramref name="min"/> to <paramref name="max"/> (null when not given).</summary>
    public static Option<int?> OptionalNumber(string name, string helpName, string description, int min, int max = int.MaxValue) =>
        new(name) { Description = description, HelpName = helpName, CustomParser = result => ParseNumber(result, name, min, max) };

    /// <summary>
    /// A duration with a unit (<c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>; a bare number is seconds) from
    /// <paramref name="min"/> to <paramref name="max"/>; null when not given and there is no default.
    /// </summary>
    public static Option<TimeSpan?> Duration(string name, string description, TimeSpan min, TimeSpan max, TimeSpan? defaultValue = null)
    {
        var option = new Option<TimeSpan?>(name)
        {
            Description = $"{description} A duration: 500ms, 30s, 5m, 1h; a bare number is seconds.",
            HelpName = "DURATION",
            CustomParser = result => ParseDuration(result, name, min, max),
        };
        if (defaultValue is { } value) option.DefaultValueFactory = _ => value;
        return option;
    }

    /// <summary>One of <paramref name="choices"/> (case-insensitive, returned in lower case).</summary>
    public static Option<string?> Choice(string name, string helpName, string description, IReadOnlyList<string> choices, bool required = false) =>
        new(name)
        {
            Description = description,
            HelpName = helpName,
            Required = required,
            CustomParser = result =>
            {
                var text = Single(result).Trim().ToLowerInvariant();
                if (choices.Contains(text)) return text;
                result.AddError($"{name} '{Single(result)}' is not one of {string.Join(", ", choices)}; e.g. {name} {choices[0]}.");
                return null;
            },
        };

    /// <summary>A tenant name as the auth file spells one (contracts/files/AuthFile.schema.json): 1 to 64 of A-Z a-z 0-9 . _ -.</summary>
    public static string? ParseTenant(ArgumentResult result)
    {
        var text = Single(result).Trim();
        if (text.Length is >= 1 and <= 64 && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-')) return text;
        result.AddError($"--tenant '{Single(result)}' is not a tenant name: 1 to 64 characters from A-Z a-z 0-9 . _ -, e.g. --tenant team-a.");
        return null;
    }

    /// <summary>A ZeroMQ endpoint: tcp://HOST:PORT, ipc://NAME or inproc://NAME.</summary>
    public static string? ParseEndpoint(ArgumentResult result, string name)
    {
        var text = Single(result);
        if (EndpointProblem(text) is { } problem)
        {
            result.AddError($"{name}: {problem}");
            return null;
        }
        return text.Trim();
    }

    /// <summary>Why <paramref name="endpoint"/> is not a ZeroMQ endpoint, with an example; null when it is one.</summary>
    public static string? EndpointProblem(string endpoint)
    {
        try
        {
            ZmqEndpoints.EnsureValid(endpoint.Trim(), nameof(endpoint));
            return null;
        }
        catch (ArgumentException)
        {
            return $"'{endpoint}' is not an endpoint; write tcp://HOST:PORT, e.g. tcp://127.0.0.1:5750 (or ipc://PATH).";
        }
    }

    /// <summary>A concrete topic: dot-separated tokens, no wildcards.</summary>
    public static string? ParseTopic(ArgumentResult result, string name)
    {
        var text = Single(result);
        if (Topic.IsValid(text)) return text;
        result.AddError($"{name} '{text}' is not a topic: use dot-separated non-empty tokens of letters, digits and -_:/@, no wildcards, e.g. {name} orders.created.");
        return null;
    }

    /// <summary>A subscription pattern: a topic whose tokens may be <c>*</c>, and whose last token may be <c>&gt;</c>.</summary>
    public static string? ParsePattern(ArgumentResult result, string name)
    {
        var text = Single(result);
        if (Topic.IsValidPattern(text)) return text;
        result.AddError($"{name} '{text}' is not a pattern: dot-separated tokens, '*' for one token, '>' only as the last token, e.g. {name} 'orders.>' or 'orders.*.created'.");
        return null;
    }

    private static int? ParseNumber(ArgumentResult result, string name, int min, int max)
    {
        var text = Single(result);
        var range = max == int.MaxValue ? $"at least {min}" : $"from {min} to {max}";
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
        {
            result.AddError($"{name} takes a whole number {range}, not '{text}'; e.g. {name} {Math.Max(min, 1)}.");
            return null;
        }
        if (value < min || value > max)
        {
            result.AddError($"{name} must be {range}, not {value}; e.g. {name} {Math.Max(min, 1)}.");
            return null;
        }
        return value;
    }

    private static TimeSpan? ParseDuration(ArgumentResult result, string name, TimeSpan min, TimeSpan max)
    {
        var text = Single(result);
        if (!Durations.TryParse(text, out var value))
        {
            result.AddError($"{name} takes a duration such as 500ms, 30s, 5m or 1h (a bare number is seconds), not '{text}'; e.g. {name} 30s.");
            return null;
        }
        if (value < min || value > max)
        {
            result.AddError($"{name} must be from {Durations.Format(min)} to {Durations.Format(max)}, not {Durations.Format(value)}; e.g. {name} {Durations.Format(Clamp(TimeSpan.FromSeconds(30), min, max))}.");
            return null;
        }
        return value;
    }

    private static TimeSpan Clamp(TimeSpan value, TimeSpan min, TimeSpan max) => value < min ? min : value > max ? max : value;

    private static string Single(ArgumentResult result) => result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
}
