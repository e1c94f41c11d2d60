using NATS.Client.Core;

namespace Onex.Transports.JetStream;

/// <summary>
/// How the JetStream bus authenticates to nats-server: user and password, a token, an NKey seed file, or a creds file
/// (JWT and NKey, from <c>nsc</c>). Set one kind; they map onto NATS.Net's <see cref="NatsAuthOpts"/>.
/// <see cref="ToString"/> never shows a secret.
/// </summary>
public sealed record NatsCredentials
{
    /// <summary>No credentials (the server must allow anonymous clients).</summary>
    public static NatsCredentials None { get; } = new();

    /// <summary>User name, with <see cref="Password"/> (server: <c>authorization { user: ..., password: ... }</c>).</summary>
    public string? Username { get; init; }

    /// <summary>Password of <see cref="Username"/>.</summary>
    public string? Password { get; init; }

    /// <summary>A token (server: <c>authorization { token: ... }</c>).</summary>
    public string? Token { get; init; }

    /// <summary>
    /// A file holding an NKey user seed (a line <c>SU...</c>, as <c>nk -gen user</c> writes it); the server lists the
    /// matching public key (<c>U...</c>), which is derived from the seed.
    /// </summary>
    public string? NKeySeedFile { get; init; }

    /// <summary>A creds file (a user JWT and its NKey seed) for servers run with operators and accounts.</summary>
    public string? CredsFile { get; init; }

    /// <summary>Whether any credentials are set.</summary>
    public bool IsSet => Username is not null || Token is not null || NKeySeedFile is not null || CredsFile is not null;

    /// <summary>Credentials of the user and password kind.</summary>
    public static NatsCredentials UserPassword(string username, string password) => new() { Username = username, Password = password };

    /// <summary>Throws <see cref="ArgumentException"/> when more than one kind is set, or a part is missing.</summary>
    public void Validate()
    {
        var kinds = (Username is not null ? 1 : 0) + (Token is not null ? 1 : 0) + (NKeySeedFile is not null ? 1 : 0) + (CredsFile is not null ? 1 : 0);
        if (kinds > 1)
            throw new ArgumentException("NATS credentials: set one kind (Username/Password, Token, NKeySeedFile or CredsFile), not several.", nameof(JetStreamEventBusOptions.Credentials));
        if ((Username is null) != (Password is null))
            throw new ArgumentException("NATS credentials: Username and Password go together.", nameof(JetStreamEventBusOptions.Credentials));
        foreach (var (file, name) in new[] { (NKeySeedFile, nameof(NKeySeedFile)), (CredsFile, nameof(CredsFile)) })
            if (file is not null && !File.Exists(file))
                throw new ArgumentException($"NATS credentials: {name} {file} does not exist.", nameof(JetStreamEventBusOptions.Credentials));
    }

    internal NatsAuthOpts ToAuthOpts()
    {
        var auth = NatsAuthOpts.Default with { Username = Username, Password = Password, Token = Token, CredsFile = CredsFile };
        if (NKeySeedFile is null) return auth;
        // A seed file as nk and nsc write it (the seed alone, or with its public key): the public key is derived here,
        // since NATS.Net's own NKeyFile wants both lines.
        var seed = File.ReadLines(NKeySeedFile).Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("SU", StringComparison.Ordinal))
            ?? throw new ArgumentException($"NATS credentials: {NKeySeedFile} holds no user seed (a line starting with SU).", nameof(JetStreamEventBusOptions.Credentials));
        try
        {
            using var pair = NATS.NKeys.KeyPair.FromSeed(seed);
            return auth with { Seed = seed, NKey = pair.GetPublicKey() };
        }
        catch (NATS.NKeys.NKeysException ex)
        {
            throw new ArgumentException($"NATS credentials: the seed in {NKeySeedFile} is not valid: {ex.Message}", nameof(JetStreamEventBusOptions.Credentials), ex);
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        Username is not null ? $"user {Username} with a password"
        : Token is not null ? "a token"
        : NKeySeedFile is not null ? $"the NKey seed in {NKeySeedFile}"
        : CredsFile is not null ? $"the creds file {CredsFile}"
        : "no credentials";
}
