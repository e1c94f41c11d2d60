using Onex.Transports.Buses;

namespace Onex.Extensions.Hosting;

/// <summary>
/// The event bus's settings as bound from configuration (e.g. the <c>Onex:Bus</c> section). Absent values keep
/// <see cref="EventBusOptions.FromEnvironment"/>'s (the <c>ONEX_BUS*</c> variables, else the defaults).
/// </summary>
public sealed class OnexEventBusSettings
{
    /// <summary>The backend: <c>memory</c>, <c>zmq</c>, <c>ipc</c> or <c>jetstream</c>.</summary>
    public string? Backend { get; set; }

    /// <summary>The bus's name (how others find it in the registry).</summary>
    public string? Name { get; set; }

    /// <summary><c>host</c> (create and register the bus) or <c>join</c> (find it in the registry and join it).</summary>
    public string? Role { get; set; }

    /// <summary>Explicit endpoints (instead of leasing them or looking them up).</summary>
    public string[]? Endpoints { get; set; }

    /// <summary>The NATS server of the jetstream backend.</summary>
    public string? NatsUrl { get; set; }

    /// <summary>Turns these settings into bus options over <paramref name="defaults"/>.</summary>
    public EventBusOptions ToOptions(EventBusOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        var options = defaults;
        if (!string.IsNullOrWhiteSpace(Backend)) options = options with { Backend = Backend.Trim().ToLowerInvariant() };
        if (!string.IsNullOrWhiteSpace(Name)) options = options with { Name = Name.Trim() };
        if (!string.IsNullOrWhiteSpace(Role))
            options = options with { Role = Role.Trim().ToLowerInvariant() == "join" ? EventBusRole.Join : EventBusRole.Host };
        if (Endpoints is { Length: > 0 } endpoints) options = options with { Endpoints = endpoints };
        if (!string.IsNullOrWhiteSpace(NatsUrl)) options = options with { NatsUrl = NatsUrl.Trim() };
        return options;
    }

    internal IEnumerable<string> Problems()
    {
        if (!string.IsNullOrWhiteSpace(Backend) && !EventBusFactory.Backends.Contains(Backend.Trim().ToLowerInvariant()))
            yield return $"Onex:Bus:Backend '{Backend}' is not a backend; use one of {string.Join(", ", EventBusFactory.Backends)}.";
        if (!string.IsNullOrWhiteSpace(Role) && Role.Trim().ToLowerInvariant() is not ("host" or "join"))
            yield return $"Onex:Bus:Role '{Role}' is not a bus role; use host or join.";
        if (Name is { } name && string.IsNullOrWhiteSpace(name)) yield return "Onex:Bus:Name must not be blank.";
    }
}
