using System.Runtime.CompilerServices;
using System.Text;
using Onex.Bus;
using Onex.InMemory;
using Onex.Protocol;
using Onex.Testing.Registry;
using Onex.Testing.Resources;
using Onex.Transports.Buses;

namespace Onex.Testing.Buses;

/// <summary>
/// Buses made for one test: a unique name, the test registry, leased ports (zmq), a private socket directory (ipc),
/// the kit's NATS server and a stream deleted on dispose (jetstream). Tied to the test's scope.
/// </summary>
internal static class TestBuses
{
    private const int MaxNameStem = 40;

    /// <summary>What the kit knows of each bus it created, so joining needs nothing but the bus.</summary>
    private static readonly ConditionalWeakTable<IEventBus, EventBusOptions> Created = new();

    public static async ValueTask<IEventBus> CreateAsync(string backend, Func<EventBusOptions, EventBusOptions>? configure, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(backend);
        var (scope, purpose) = TestResources.Current();
        var registry = await OnexTestEnvironment.RegistryAsync(cancellationToken).ConfigureAwait(false);
        var options = EventBusOptions.Default with
        {
            Backend = backend,
            Name = UniqueName(purpose),
            Role = EventBusRole.Host,
            Registry = registry,
        };

        TestDirectory? directory = null;
        switch (backend)
        {
            case BusKinds.Ipc:
                directory = TestDirectory.Create();
                options = options with { Ipc = options.Ipc with { RootDirectory = directory.Path } };
                break;
            case BusKinds.JetStream:
                options = options with
                {
                    NatsUrl = await OnexTestEnvironment.NatsUrlAsync(cancellationToken).ConfigureAwait(false),
                    JetStream = options.JetStream with { DeleteStreamOnDispose = true },
                };
                break;
        }
        if (configure is not null) options = configure(options);

        // The directory goes after the bus (scopes dispose last-acquired first): the host removes its socket, then the
        // kit removes what is left.
        if (directory is not null && !scope.TryAdd(directory))
        {
            await directory.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"'{scope.Name}' has already finished.");
        }
        // On failure the factory has released what it took; the scope removes the directory after the test.
        var bus = await EventBusFactory.CreateAsync(options, cancellationToken).ConfigureAwait(false);
        Created.AddOrUpdate(bus, options);
        return await TestResources.AddAsync(scope, bus).ConfigureAwait(false);
    }

    public static async ValueTask<IEventBus> JoinAsync(IEventBus hosted, Func<EventBusOptions, EventBusOptions>? configure, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(hosted);
        if (!Created.TryGetValue(hosted, out var hostOptions))
            throw new ArgumentException($"Bus '{hosted.Name}' was not created by OnexTest.CreateBusAsync; join it with EventBusFactory and its endpoints.", nameof(hosted));
        var (scope, _) = TestResources.Current();

        IEventBus bus;
        if (hostOptions.Backend == BusKinds.Memory)
        {
            // One process, one bus object: a participant shares the host's subscriber list.
            var memory = (hosted as RegisteredEventBus)?.Inner as InMemoryEventBus ?? (InMemoryEventBus)hosted;
            bus = memory.Join($"{hostOptions.Registry?.NodeId}-participant");
        }
        else
        {
            var options = hostOptions with
            {
                Role = EventBusRole.Join,
                Endpoints = [], // looked up in the registry by name, as another process would
                JetStream = hostOptions.JetStream with { DeleteStreamOnDispose = false }, // the stream is the host's
            };
            if (configure is not null) options = configure(options);
            bus = await EventBusFactory.CreateAsync(options, cancellationToken).ConfigureAwait(false);
        }
        return await TestResources.AddAsync(scope, bus).ConfigureAwait(false);
    }

    /// <summary>
    /// A name valid for every backend (letters, digits, '-'): the test's method name, shortened, plus random hex, so
    /// parallel tests and other test processes sharing the registry never pick the same one.
    /// </summary>
    internal static string UniqueName(string testName)
    {
        var method = testName;
        var paren = method.IndexOf('(');
        if (paren >= 0) method = method[..paren];
        method = method[(method.LastIndexOf('.') + 1)..];
        var stem = new StringBuilder(MaxNameStem);
        foreach (var c in method)
        {
            if (stem.Length == MaxNameStem) break;
            stem.Append(char.IsAsciiLetterOrDigit(c) ? char.ToLowerInvariant(c) : '-');
        }
        var trimmed = stem.ToString().Trim('-');
        return $"{(trimmed.Length == 0 ? "bus" : trimmed)}-{Random.Shared.Next():x8}";
    }
}

/// <summary>A private temporary directory (mode 0700), deleted with everything in it on dispose.</summary>
internal sealed class TestDirectory : IAsyncDisposable
{
    private TestDirectory(string path) => Path = path;

    public string Path { get; }

    public static TestDirectory Create() =>
        new(Directory.CreateTempSubdirectory("onex-test-").FullName); // CreateTempSubdirectory makes it 0700 on Unix

    public ValueTask DisposeAsync()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
        return ValueTask.CompletedTask;
    }

    public override string ToString() => $"test directory {Path}";
}
