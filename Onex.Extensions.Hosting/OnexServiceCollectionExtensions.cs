using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Onex.Bus;
using Onex.Transports.Registry;

namespace Onex.Extensions.Hosting;

/// <summary>Registers OnexBus in a generic host's service collection.</summary>
public static class OnexServiceCollectionExtensions
{
    /// <summary>
    /// Adds the registry client as a hosted service (<see cref="OnexRegistryClientService"/>): settings bound from
    /// <paramref name="section"/> (e.g. <c>configuration.GetSection("Onex")</c>: <c>Endpoint</c>, <c>PubEndpoint</c>,
    /// <c>NodeId</c>, <c>NodeName</c>, <c>HeartbeatInterval</c>, <c>RequestTimeout</c>, <c>MaxAttempts</c>, <c>Tenant</c>) and
    /// checked when the host starts; <see cref="RegistryClient"/> resolvable once the host has started.
    /// </summary>
    public static IServiceCollection AddOnexRegistryClient(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.AddOptions<OnexRegistrySettings>()
            .Bind(section)
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnexRegistrySettings>, SettingsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<OnexRegistryClientService>();
        services.AddHostedService(sp => sp.GetRequiredService<OnexRegistryClientService>());
        services.TryAddSingleton(sp => sp.GetRequiredService<OnexRegistryClientService>().Client
            ?? throw new InvalidOperationException("The registry client is connected when the host starts; before that, await OnexRegistryClientService.GetClientAsync."));
        return services;
    }

    /// <summary>
    /// Adds the event bus as a hosted service (<see cref="OnexEventBusService"/>): settings bound from
    /// <paramref name="section"/> (e.g. <c>configuration.GetSection("Onex:Bus")</c>: <c>Backend</c>, <c>Name</c>,
    /// <c>Role</c>, <c>Endpoints</c>, <c>NatsUrl</c>) and checked when the host starts. Call
    /// <see cref="AddOnexRegistryClient"/> first for a bus found through, or registered with, the registry.
    /// <see cref="IEventBus"/> is resolvable once the host has started.
    /// </summary>
    public static IServiceCollection AddOnexEventBus(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        services.AddOptions<OnexEventBusSettings>().Bind(section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnexEventBusSettings>, SettingsValidator>());
        services.TryAddSingleton(sp => new OnexEventBusService(
            sp.GetRequiredService<IOptions<OnexEventBusSettings>>(), sp.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>(),
            sp.GetService<OnexRegistryClientService>()));
        services.AddHostedService(sp => sp.GetRequiredService<OnexEventBusService>());
        services.TryAddSingleton(sp => sp.GetRequiredService<OnexEventBusService>().Bus
            ?? throw new InvalidOperationException("The event bus is created when the host starts; before that, await OnexEventBusService.GetBusAsync."));
        return services;
    }

    private sealed class SettingsValidator : IValidateOptions<OnexRegistrySettings>, IValidateOptions<OnexEventBusSettings>
    {
        public ValidateOptionsResult Validate(string? name, OnexRegistrySettings options) => Result(options.Problems());

        public ValidateOptionsResult Validate(string? name, OnexEventBusSettings options) => Result(options.Problems());

        private static ValidateOptionsResult Result(IEnumerable<string> problems) =>
            problems.ToList() is { Count: > 0 } list ? ValidateOptionsResult.Fail(list) : ValidateOptionsResult.Success;
    }
}
