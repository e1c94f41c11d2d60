using System.Globalization;

namespace Onex.Benchmarks;

/// <summary>
/// The options of a console measurement (<c>--name value</c> pairs): every option must be one the command knows and
/// every value must parse, else <see cref="FormatException"/> naming the option, which the command turns into a usage
/// line and exit code 2. A typo never falls back to a default silently.
/// </summary>
internal sealed class BenchArguments
{
    private readonly Dictionary<string, string> _values;

    private BenchArguments(Dictionary<string, string> values) => _values = values;

    /// <summary>Reads <paramref name="args"/>; each must be one of <paramref name="known"/> followed by its value.</summary>
    public static BenchArguments Parse(string[] args, params string[] known)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!known.Contains(args[i])) throw new FormatException($"unknown option {args[i]}.");
            if (i + 1 >= args.Length) throw new FormatException($"{args[i]} needs a value.");
            values[args[i]] = args[++i];
        }
        return new BenchArguments(values);
    }

    /// <summary>A positive whole number, or <paramref name="fallback"/> when the option is absent.</summary>
    public int Positive(string option, int fallback) => _values.TryGetValue(option, out var text) ? Positive(text, option) : fallback;

    /// <summary>A positive whole number of seconds, or <paramref name="fallback"/> when the option is absent.</summary>
    public TimeSpan Seconds(string option, TimeSpan fallback) =>
        _values.TryGetValue(option, out var text) ? TimeSpan.FromSeconds(Positive(text, option)) : fallback;

    /// <summary>A comma-separated list of positive whole numbers, or <paramref name="fallback"/> when the option is absent.</summary>
    public int[] PositiveList(string option, int[] fallback) =>
        _values.TryGetValue(option, out var text) ? text.Split(',').Select(v => Positive(v, option)).ToArray() : fallback;

    /// <summary>A comma-separated list of names out of <paramref name="allowed"/>, or <paramref name="fallback"/> when the option is absent.</summary>
    public string[] Names(string option, IReadOnlyCollection<string> allowed, string[] fallback)
    {
        if (!_values.TryGetValue(option, out var text)) return fallback;
        var names = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return names.FirstOrDefault(n => !allowed.Contains(n)) is { } unknown
            ? throw new FormatException($"{option}: unknown '{unknown}' (known: {string.Join(", ", allowed)}).")
            : names;
    }

    /// <summary>The option's text, or <paramref name="fallback"/> when it is absent.</summary>
    public string Text(string option, string fallback) => _values.GetValueOrDefault(option, fallback);

    private static int Positive(string text, string option) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : throw new FormatException($"{option}: '{text}' is not a positive whole number.");
}
