using System.Runtime.Versioning;
using Onex.Tests.Infrastructure;
using Onex.Transports.Ipc;

namespace Onex.Tests.Ipc;

/// <summary>
/// The host checks who connects (SO_PEERCRED) against its allowed users, besides the bus directory's 0700: a process
/// of the same user is served, a set that leaves our uid out refuses us, logged and disconnected.
/// </summary>
[TestFixture]
[SupportedOSPlatform("linux")]
public sealed class IpcPeerCredentialsTests
{
    private IpcTestRoot _root = null!;
    private CapturingLoggerFactory _logs = null!;

    [SetUp]
    public void CreateRoot()
    {
        _root = new IpcTestRoot();
        _logs = new CapturingLoggerFactory();
    }

    [TearDown]
    public void RemoveRoot()
    {
        _root.Dispose();
        _logs.Dispose();
    }

    private IpcEventBusOptions HostOptions(IReadOnlyCollection<uint>? allowed) => IpcEventBusOptions.Default with
    {
        Name = "peers",
        RootDirectory = _root.Path,
        LoggerFactory = _logs,
        AllowedPeerUserIds = allowed,
    };

    [Test]
    public async Task The_kernel_reports_this_process_as_the_peer()
    {
        await using var host = await IpcEventBus.HostAsync(HostOptions(null));
        await using var peer = await RawIpcPeer.ConnectAsync(_root.SocketPathOf("peers"));
        Assert.That(IpcPeerCredentials.TryRead(peer.Socket, out var credentials), Is.True);
        Assert.That(credentials.UserId, Is.EqualTo(TestNative.geteuid()));
        Assert.That(credentials.ProcessId, Is.EqualTo(Environment.ProcessId), "the host end's peer is this process");
    }

    [TestCase(false, TestName = "A_peer_of_the_same_user_is_served_by_default")]
    [TestCase(true, TestName = "A_peer_of_the_same_user_is_served_when_its_uid_is_allowed_explicitly")]
    public async Task Same_user_is_served(bool explicitSet)
    {
        var me = TestNative.geteuid();
        await using var host = await IpcEventBus.HostAsync(HostOptions(explicitSet ? [me, me + 1] : null));
        await using var peer = await RawIpcPeer.ConnectAsync(_root.SocketPathOf("peers"));
        await peer.HandshakeAsync();
        await using var joined = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = host.Endpoint });
        await using var subscription = await host.SubscribeAsync("peers.>");
        await joined.PublishAsync(Onex.Events.OnexEvent.Create("peers.hello", "x"u8.ToArray()));
        var received = await subscription.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(received.Topic, Is.EqualTo("peers.hello"));
        Assert.That(_logs.Entries.Select(e => e.Message), Has.None.Contains("refused a connection"));
    }

    [Test]
    public async Task A_peer_whose_uid_is_not_allowed_is_logged_and_disconnected_unread()
    {
        var me = TestNative.geteuid();
        await using var host = await IpcEventBus.HostAsync(HostOptions([me + 1]));
        await using var peer = await RawIpcPeer.ConnectAsync(_root.SocketPathOf("peers"));
        await peer.SendAsync(RawIpcPeer.HelloFrame());
        Assert.That(await peer.ReadFrameAsync().WaitAsync(TimeSpan.FromSeconds(10)), Is.Null, "the host closes the connection without a WELCOME");
        var refusal = _logs.Entries.Select(e => e.Message).Where(m => m.Contains("refused a connection", StringComparison.Ordinal)).ToList();
        Assert.That(refusal, Has.Count.EqualTo(1));
        Assert.That(refusal[0], Does.Contain($"pid {Environment.ProcessId}").And.Contain($"uid {me}").And.Contain($"({me + 1})"));
    }
}
