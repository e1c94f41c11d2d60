using System.CommandLine;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.RegistryNode.Hosting;
using Onex.Transports.Registry;

namespace Onex.Cli;

/// <summary>The console streams of one invocation and the global options every command shares.</summary>
internal sealed class CliContext(TextWriter output, TextWriter error, TextReader input)
{
    public TextWriter Output { get; } = output;
    public TextWriter Error { get; } = error;
    public TextReader Input { get; } = input;

    /// <summary>Stdin is a terminal: commands that hold something do not read it (a person ends them with Ctrl-C).</summary>
    public bool InputIsTerminal { get; init; }

    /// <summary>The real process: commands that hold something also end when the reader of stdout goes away.</summary>
    public bool WatchOutputReader { get; init; }

    public static Option<string?> RegistryOption { get; } = new("--registry")
    {
        CustomParser = result => CliValues.ParseEndpoint(result, "--registry"),
        Description = $"The registry's request endpoint (default: ${RegistryEndpoints.RouterVariable}, else {RegistryEndpoints.DefaultRouter}).",
        HelpName = "ENDPOINT",
        Recursive = true,
    };

    public static Option<string?> RegistryPubOption { get; } = new("--registry-pub")
    {
        CustomParser = result => CliValues.ParseEndpoint(result, "--registry-pub"),
        Description = $"The registry's broadcast endpoint, for watching (default: ${RegistryEndpoints.PubVariable}, else {RegistryEndpoints.DefaultPub}).",
        HelpName = "ENDPOINT",
        Recursive = true,
    };

    public static Option<string?> ServerKeyOption { get; } = new("--server-key")
    {
        Description = $"The registry's CURVE public key, for a registry that encrypts (default: ${RegistryEndpoints.ServerKeyVariable}, else no encryption).",
        HelpName = "KEY",
        Recursive = true,
    };

    public static Option<string?> TokenOption { get; } = new("--token")
    {
        Description = $"The access token for a registry with access control (default: ${RegistryToken.Variable}). Prefer the variable: a command line is visible to other users.",
        HelpName = "TOKEN",
        Recursive = true,
    };

    public static Option<string?> TenantOption { get; } = new("--tenant")
    {
        CustomParser = result => CliValues.ParseTenant(result),
        Description = $"The tenant to act in, for an admin token acting in another tenant (default: ${RegistryTenant.Variable}, else the token's tenant).",
        HelpName = "NAME",
        Recursive = true,
    };

    /// <summary>The default of <see cref="TimeoutOption"/>.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    public static Option<TimeSpan?> TimeoutOption { get; } = CreateTimeoutOption();

    private static Option<TimeSpan?> CreateTimeoutOption()
    {
        var option = CliValues.Duration("--timeout", "How long to wait for the registry to answer, retries included (default 5s).",
            TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(24));
        option.Recursive = true;
        return option;
    }

    /// <summary>The --timeout given, or <see cref="DefaultTimeout"/>.</summary>
    public static TimeSpan Timeout(ParseResult parse) => parse.GetValue(TimeoutOption) ?? DefaultTimeout;

    /// <summary>True when the command line asks for JSON output (<c>--json</c>): errors are then printed as JSON too.</summary>
    public static bool WantsJson(ParseResult parse) =>
        parse.Tokens.TakeWhile(t => t.Value != "--").Any(t => t.Value == "--json");

    /// <summary>
    /// Reports a failure and returns <paramref name="exitCode"/>: the one line on stderr, or with <c>--json</c> one JSON
    /// object on stderr, <c>{"error":{"exitCode":2,"code":"USAGE","message":"..."}}</c> (stdout stays for results).
    /// </summary>
    public async Task<int> FailAsync(ParseResult parse, int exitCode, string code, string line)
    {
        if (WantsJson(parse))
        {
            var message = line.StartsWith("onex: ", StringComparison.Ordinal) ? line["onex: ".Length..] : line;
            await Error.WriteLineAsync(CliJson.Serialize(new { error = new { exitCode, code, message } }, indented: false)).ConfigureAwait(false);
        }
        else
        {
            await Error.WriteLineAsync(line).ConfigureAwait(false);
        }
        return exitCode;
    }

    /// <summary>Client options from the global options; <paramref name="announce"/> makes the CLI a node (needed to hold leases).</summary>
    public RegistryClientOptions ClientOptions(ParseResult parse, bool announce, string nodeName)
    {
        const int attempts = 3;
        var total = Timeout(parse);
        return new RegistryClientOptions
        {
            Endpoint = CheckedEndpoint(parse.GetValue(RegistryOption), RegistryEndpoints.RouterVariable, RegistryEndpoints.ResolveRouter, "--registry"),
            PubEndpoint = CheckedEndpoint(parse.GetValue(RegistryPubOption), RegistryEndpoints.PubVariable, RegistryEndpoints.ResolvePub, "--registry-pub"),
            ServerKey = CheckedServerKey(parse.GetValue(ServerKeyOption)),
            AnnounceNode = announce,
            Token = parse.GetValue(TokenOption),
            Tenant = parse.GetValue(TenantOption),
            NodeName = nodeName,
            MaxAttempts = attempts,
            RequestTimeout = total / attempts,
            RetryBaseDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(100),
        };
    }

    /// <summary>The CURVE server key from --server-key or the environment, checked; a malformed one is a usage error naming its source.</summary>
    private static string? CheckedServerKey(string? given)
    {
        try
        {
            return given is null
                ? RegistryEndpoints.ResolveServerKey(null)
                : Onex.Transports.Security.CurveKeyPair.CheckPublicKey(given, "--server-key");
        }
        catch (FormatException ex)
        {
            throw new UsageException($"{ex.Message} Use the 40-character public key `onex auth keygen` printed.");
        }
    }

    /// <summary>The endpoint to use; one taken from the environment is checked here (the option was checked while parsing).</summary>
    private static string CheckedEndpoint(string? given, string variable, Func<string?, string> resolve, string option)
    {
        var endpoint = resolve(given);
        if (given is null && CliValues.EndpointProblem(endpoint) is { } problem)
            throw new UsageException($"{variable}: {problem} Fix the variable, or give {option} ENDPOINT.");
        return endpoint;
    }

    /// <summary>
    /// Connects to the registry; with <paramref name="warnings"/> (commands that run until stopped) the client's
    /// warnings go to stderr as <c>onex: warning: ...</c> lines.
    /// </summary>
    public ValueTask<RegistryClient> ConnectAsync(ParseResult parse, CancellationToken cancellationToken, bool announce = false, string nodeName = "onex", bool warnings = false)
    {
        var options = ClientOptions(parse, announce, nodeName);
        if (warnings) options = options with { LoggerFactory = new StderrWarnings(Error) };
        return RegistryClient.ConnectAsync(options, cancellationToken);
    }
}
