using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Onex.RegistryNode.Hosting;

/// <summary>Registers a registry node in a generic host.</summary>
public static class RegistryNodeServiceCollectionExtensions
{
    /// <summary>
    /// Adds a registry node that starts and stops with the host, configured from <paramref name="section"/> (the
    /// <c>Registry</c> section; keys in <see cref="RegistryNodeConfiguration"/>) and validated when the host starts.
    /// </summary>
    public static IServiceCollection AddOnexRegistryNode(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(section);
        return services.AddOnexRegistryNode(() => RegistryNodeConfiguration.Read(section));
    }

    /// <summary>Adds a registry node that starts and stops with the host, with fixed <paramref name="options"/>.</summary>
    public static IServiceCollection AddOnexRegistryNode(this IServiceCollection services, RegistryNodeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return services.AddOnexRegistryNode(() => options);
    }

    private static IServiceCollection AddOnexRegistryNode(this IServiceCollection services, Func<RegistryNodeOptions> read)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<RegistryNodeOptions>().ValidateOnStart();
        // The options are an immutable record, so they are made whole by a factory rather than configured in place.
        services.AddSingleton<IOptionsFactory<RegistryNodeOptions>>(sp =>
            new RegistryNodeOptionsFactory(read, sp.GetServices<IValidateOptions<RegistryNodeOptions>>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RegistryNodeOptions>, RegistryNodeOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddLogging();
        services.TryAddSingleton<RegistryNodeService>();
        services.AddHostedService(sp => sp.GetRequiredService<RegistryNodeService>());
        // After the node's service, so it starts once the node serves and stops first; idle without an HTTP endpoint.
        services.TryAddSingleton<Http.RegistryHttpService>();
        services.AddHostedService(sp => sp.GetRequiredService<Http.RegistryHttpService>());
        return services;
    }

    private sealed class RegistryNodeOptionsFactory(Func<RegistryNodeOptions> read, IEnumerable<IValidateOptions<RegistryNodeOptions>> validators)
        : IOptionsFactory<RegistryNodeOptions>
    {
        public RegistryNodeOptions Create(string name)
        {
            RegistryNodeOptions options;
            try
            {
                options = read();
            }
            catch (FormatException ex)
            {
                throw new OptionsValidationException(name, typeof(RegistryNodeOptions), [ex.Message]);
            }
            var failures = validators.Select(v => v.Validate(name, options)).Where(r => r.Failed).SelectMany(r => r.Failures ?? []).ToList();
            if (failures.Count > 0) throw new OptionsValidationException(name, typeof(RegistryNodeOptions), failures);
            return options;
        }
    }

    private sealed class RegistryNodeOptionsValidator : IValidateOptions<RegistryNodeOptions>
    {
        public ValidateOptionsResult Validate(string? name, RegistryNodeOptions options)
        {
            try
            {
                RegistryNodeHost.Check(options);
                return ValidateOptionsResult.Success;
            }
            catch (ArgumentException ex)
            {
                return ValidateOptionsResult.Fail(ex.Message.Split(" (Parameter", 2)[0]);
            }
        }
    }
}
