using System.CommandLine;
using Onex.Transports.Registry;

namespace Onex.Cli;

/// <summary>The console streams of one invocation and the global options every command shares.</summary>
internal sealed class CliContext(TextWriter output, TextWriter error, TextReader input)
{
    public TextWriter Output { get; } = output;
    public TextWriter Error { get; } = error;
    public TextReader Input { get; } = input;

    public static Option<string?> RegistryOption { get; } = new("--registry")
    {
        Description = $"The registry's request endpoint (default: ${RegistryEndpoints.RouterVariable}, else {RegistryEndpoints.DefaultRouter}).",
        HelpName = "ENDPOINT",
        Recursive = true,
    };

    public static Option<string?> RegistryPubOption { get; } = new("--registry-pub")
    {
        Description = $"The registry's broadcast endpoint, for watching (default: ${RegistryEndpoints.PubVariable}, else {RegistryEndpoints.DefaultPub}).",
        HelpName = "ENDPOINT",
        Recursive = true,
    };

    public static Option<double> TimeoutOption { get; } = new("--timeout")
    {
        Description = "Seconds to wait for the registry to answer, retries included.",
        HelpName = "SECONDS",
        DefaultValueFactory = _ => 5,
        Recursive = true,
    };

    /// <summary>Client options from the global options; <paramref name="announce"/> makes the CLI a node (needed to hold leases).</summary>
    public RegistryClientOptions ClientOptions(ParseResult parse, bool announce, string nodeName)
    {
        const int attempts = 3;
        var total = TimeSpan.FromSeconds(Math.Max(0.1, parse.GetValue(TimeoutOption)));
        return new RegistryClientOptions
        {
            Endpoint = parse.GetValue(RegistryOption),
            PubEndpoint = parse.GetValue(RegistryPubOption),
            AnnounceNode = announce,
            NodeName = nodeName,
            MaxAttempts = attempts,
            RequestTimeout = total / attempts,
            RetryBaseDelay = TimeSpan.FromMilliseconds(20),
            RetryMaxDelay = TimeSpan.FromMilliseconds(100),
        };
    }

    public ValueTask<RegistryClient> ConnectAsync(ParseResult parse, CancellationToken cancellationToken, bool announce = false, string nodeName = "onex") =>
        RegistryClient.ConnectAsync(ClientOptions(parse, announce, nodeName), cancellationToken);
}
