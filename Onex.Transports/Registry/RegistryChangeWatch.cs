using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Onex.Protocol;
using Onex.Transports.Zmq;

namespace Onex.Transports.Registry;

/// <summary>
/// The watch side of <see cref="RegistryClient"/>: opens the change source (the token watch stream over the request
/// endpoint when a token is configured, else a SUB socket on PUB) and runs a <see cref="RegistryWatcher"/> on it, which
/// snapshots through <paramref name="snapshot"/> and resyncs on gaps.
/// </summary>
internal sealed class RegistryChangeWatch(
    RegistryRequestEngine requests, string pubEndpoint, ZmqSocketOptions sockets, string? token, string? tenant, long bufferBytes, TimeSpan expectedRegistryHeartbeatInterval,
    Func<CancellationToken, ValueTask<RegistrySnapshot>> snapshot, ILoggerFactory loggerFactory)
{
    /// <summary>Test seam: watchers started afterwards drop changes for which it returns false, as if lost on the wire.</summary>
    public Func<RegistryChange, bool>? ChangeFilter { get; set; }

    public async IAsyncEnumerable<RegistryWatchEvent> WatchAsync(string topicPrefix, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // With a token, changes come over the request endpoint, filtered to the token's tenant (PROTOCOL.md 16.7): a
        // registry with access control sends none on PUB. Without one, subscribe to every PUB broadcast: gaps can only
        // be seen on the full sequence. The prefix filters what is yielded either way.
        using IRegistryBroadcastSource source = token is not null
            ? new RegistryWatchStream(requests.Endpoint, sockets, token, requests.ClientId, topicPrefix, ChangeFilter, loggerFactory.CreateLogger<RegistryWatchStream>(), tenant)
            : new ZmqRegistryBroadcastSource(
                pubEndpoint, ChangeTypes.TopicPrefix, sockets, capacity: 65_536, ChangeFilter,
                loggerFactory.CreateLogger<ZmqRegistryBroadcastSource>(), bufferBytes);
        var watcher = new RegistryWatcher(
            source, snapshot, topicPrefix, expectedRegistryHeartbeatInterval, requests.TimeProvider,
            loggerFactory.CreateLogger<RegistryWatcher>());
        await foreach (var item in watcher.RunAsync(cancellationToken).ConfigureAwait(false))
            yield return item;
    }
}
