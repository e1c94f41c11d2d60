using Onex.Events;
using Onex.Protocol;
using Onex.Transports.Zmq;

namespace Onex.RegistryNode.Changes;

/// <summary>
/// Publishes changes and heartbeats as ordinary bus events on the registry's PUB endpoint: topic
/// <c>registry.</c> + change type (or <c>registry.heartbeat</c>), event type <c>registry.change</c> /
/// <c>registry.heartbeat</c>, payload the MessagePack body (PROTOCOL.md 1.2 and 6.7).
/// </summary>
internal sealed class ZmqChangeBroadcaster : IChangeSink
{
    public const string ChangeEventType = "registry.change";
    public const string HeartbeatEventType = "registry.heartbeat";

    /// <summary>
    /// Every topic the registry publishes: <c>registry.</c> + each change type of <see cref="ChangeTypes"/>, and the
    /// heartbeat topic. The PUB socket keeps only subscriptions that are prefixes of these (PROTOCOL.md section 14).
    /// </summary>
    public static IReadOnlyList<string> Topics { get; } = typeof(ChangeTypes)
        .GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static)
        .Where(f => f is { IsLiteral: true } && f.FieldType == typeof(string) && f.Name is not (nameof(ChangeTypes.TopicPrefix) or nameof(ChangeTypes.HeartbeatTopic)))
        .Select(f => ChangeTypes.TopicOf((string)f.GetRawConstantValue()!))
        .Append(ChangeTypes.HeartbeatTopic)
        .ToArray();

    private readonly ZmqEventPublisher _publisher;
    private readonly string _sourceNodeId;
    private readonly TimeProvider _time;
    private readonly ChangeBodies _bodies;

    public ZmqChangeBroadcaster(ZmqEventPublisher publisher, string sourceNodeId, ChangeBodies bodies, TimeProvider time)
    {
        _bodies = bodies;
        _publisher = publisher;
        _sourceNodeId = sourceNodeId;
        _time = time;
    }

    public void Publish(RegistryChange change) =>
        _publisher.Publish(OnexEvent.Create(
            ChangeTypes.TopicOf(change.ChangeType), _bodies.Of(change), ChangeEventType, _sourceNodeId, timeProvider: _time));

    public void Publish(RegistryHeartbeat heartbeat) =>
        _publisher.Publish(OnexEvent.Create(
            ChangeTypes.HeartbeatTopic, RegistryCodec.SerializeBody(heartbeat), HeartbeatEventType, _sourceNodeId, timeProvider: _time));
}
