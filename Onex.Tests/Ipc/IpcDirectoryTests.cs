using System.Net.Sockets;
using System.Runtime.Versioning;
using Onex.Bus;
using Onex.Events;
using Onex.Transports.Ipc;
using Onex.Tests.Infrastructure;

namespace Onex.Tests.Ipc;

/// <summary>The filesystem side of hosting: private directories, the lock, stale and foreign socket files, cleanup.</summary>
[TestFixture]
[SupportedOSPlatform("linux")]
public sealed class IpcDirectoryTests
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode GroupOrOther = (UnixFileMode)0x3F;

    private IpcTestRoot _root = null!;

    [SetUp]
    public void CreateRoot() => _root = new IpcTestRoot();

    [TearDown]
    public void RemoveRoot() => _root.Dispose();

    private IpcEventBusOptions Options(string name = "bus") => IpcEventBusOptions.Default with { Name = name, RootDirectory = _root.Path };

    [Test]
    public async Task Host_creates_root_and_bus_directories_with_mode_0700()
    {
        await using var host = await IpcEventBus.HostAsync(Options("orders"));

        Assert.Multiple(() =>
        {
            Assert.That(File.GetUnixFileMode(_root.Path), Is.EqualTo(Private), "root directory mode");
            Assert.That(File.GetUnixFileMode(Path.Combine(_root.Path, "orders")), Is.EqualTo(Private), "bus directory mode");
        });
    }

    [Test]
    public async Task Socket_file_has_no_group_or_other_permission_bits()
    {
        await using var host = await IpcEventBus.HostAsync(Options());

        var mode = File.GetUnixFileMode(host.SocketPath);
        Assert.That(mode & GroupOrOther, Is.EqualTo(UnixFileMode.None), $"socket mode {Convert.ToString((int)mode, 8)} lets other users in");
    }

    [Test]
    public async Task Endpoint_is_unix_scheme_with_the_absolute_socket_path()
    {
        await using var host = await IpcEventBus.HostAsync(Options("orders"));

        Assert.Multiple(() =>
        {
            Assert.That(host.SocketPath, Is.EqualTo(_root.SocketPathOf("orders")));
            Assert.That(host.Endpoint, Is.EqualTo("unix://" + _root.SocketPathOf("orders")));
        });
    }

    [Test]
    public void Bus_directory_with_group_permissions_is_refused()
    {
        Directory.CreateDirectory(_root.Path, Private);
        Directory.CreateDirectory(Path.Combine(_root.Path, "bus"), Private | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () => await IpcEventBus.HostAsync(Options()));

        Assert.Multiple(() =>
        {
            Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.InsecureDirectory));
            Assert.That(ex.Message, Does.Contain("0750").And.Contain("0700"), "the message should name the bad mode and the required one");
        });
    }

    [Test]
    public void Root_directory_with_other_permissions_is_refused()
    {
        Directory.CreateDirectory(_root.Path, Private | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () => await IpcEventBus.HostAsync(Options()));

        Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.InsecureDirectory));
        Assert.That(Directory.Exists(Path.Combine(_root.Path, "bus")), Is.False, "nothing should be created inside a refused root");
    }

    [Test]
    public void Directory_owned_by_another_user_is_refused()
    {
        string root;
        if (TestNative.geteuid() == 0)
        {
            // As root, hand the directory to 'nobody' to get a foreign owner with an otherwise perfect mode.
            Directory.CreateDirectory(_root.Path, Private);
            TestNative.Chown(_root.Path, 65534, 65534);
            root = _root.Path;
        }
        else
        {
            // As an ordinary user, '/' is owned by root: the owner check refuses it before anything else.
            root = "/";
        }

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () =>
            await IpcEventBus.HostAsync(IpcEventBusOptions.Default with { Name = "bus", RootDirectory = root }));

        Assert.Multiple(() =>
        {
            Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.InsecureDirectory));
            Assert.That(ex.Message, Does.Contain("owned by uid"), "the message should say the owner is wrong");
        });
    }

    [Test]
    public void Symbolic_link_in_place_of_the_bus_directory_is_refused()
    {
        Directory.CreateDirectory(_root.Path, Private);
        var elsewhere = Directory.CreateDirectory(Path.Combine(_root.Path, "elsewhere"), Private).FullName;
        File.CreateSymbolicLink(Path.Combine(_root.Path, "bus"), elsewhere);

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () => await IpcEventBus.HostAsync(Options()));

        Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.InsecureDirectory));
    }

    [Test]
    public async Task Second_host_of_the_same_bus_fails_while_the_first_is_alive()
    {
        await using var first = await IpcEventBus.HostAsync(Options());

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () => await IpcEventBus.HostAsync(Options()));

        Assert.Multiple(() =>
        {
            Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.AlreadyHosted));
            Assert.That(ex.Message, Does.Contain("already hosted"));
            Assert.That(File.Exists(first.SocketPath), Is.True, "the failed attempt must not touch the first host's socket");
        });
    }

    [Test]
    public async Task Two_hosts_racing_for_the_same_bus_produce_exactly_one_winner()
    {
        var attempts = Enumerable.Range(0, 4).Select(_ => Task.Run(async () => await IpcEventBus.HostAsync(Options()))).ToArray();
        try
        {
            await Task.WhenAll(attempts);
        }
        catch (IpcBusSetupException)
        {
            // Expected for the losers; each attempt is inspected below.
        }

        var winners = attempts.Where(a => a.IsCompletedSuccessfully).Select(a => a.Result).ToArray();
        var losers = attempts.Where(a => a.IsFaulted).Select(a => a.Exception!.InnerException).ToArray();
        foreach (var winner in winners) await winner.DisposeAsync();
        Assert.Multiple(() =>
        {
            Assert.That(winners, Has.Length.EqualTo(1), "exactly one host should win the lock");
            Assert.That(losers.Select(l => (l as IpcBusSetupException)?.Failure), Is.All.EqualTo(IpcSetupFailure.AlreadyHosted),
                "every other attempt should fail as already hosted");
        });
    }

    [Test]
    public async Task First_host_keeps_serving_after_a_second_host_was_refused()
    {
        await using var first = await IpcEventBus.HostAsync(Options());
        Assert.ThrowsAsync<IpcBusSetupException>(async () => await IpcEventBus.HostAsync(Options()));

        await using var participant = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = first.Endpoint });
        await using var subscription = await first.SubscribeAsync("still.alive");
        await participant.PublishAsync(OnexEvent.Create("still.alive", ReadOnlyMemory<byte>.Empty));

        var received = await subscription.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(received.Topic, Is.EqualTo("still.alive"));
    }

    [Test]
    public async Task Stale_socket_left_by_a_dead_host_is_replaced()
    {
        var socketPath = _root.SocketPathOf("bus");
        CreateStaleSocket(_root.CreateBusDirectory("bus"));
        Assert.That(File.Exists(socketPath), Is.True, "test setup: the stale socket file should exist");

        await using var host = await IpcEventBus.HostAsync(Options());
        await using var participant = await IpcEventBus.JoinAsync(IpcEventBusOptions.Default with { SocketPath = host.Endpoint });

        Assert.That(participant.IsConnected, Is.True, "a participant should reach the new host on the replaced socket");
    }

    [Test]
    public async Task Replacing_a_stale_socket_is_logged()
    {
        CreateStaleSocket(_root.CreateBusDirectory("bus"));
        using var logs = new CapturingLoggerFactory();

        await using (await IpcEventBus.HostAsync(Options() with { LoggerFactory = logs }))
        {
        }

        Assert.That(logs.Entries.Select(e => e.EventId.Id), Does.Contain(4103), "the stale-socket warning (event 4103)");
    }

    [Test]
    public void Live_socket_without_a_lock_is_reported_as_already_hosted()
    {
        // A listener that bypasses the lock (another implementation, or locking disabled) still answers connects.
        var busDirectory = _root.CreateBusDirectory("bus");
        using var rogue = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        rogue.Bind(new UnixDomainSocketEndPoint(Path.Combine(busDirectory, "bus.sock")));
        rogue.Listen();

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () => await IpcEventBus.HostAsync(Options()));

        Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.AlreadyHosted));
    }

    [Test]
    public void Regular_file_at_the_socket_path_is_left_alone()
    {
        var socketPath = Path.Combine(_root.CreateBusDirectory("bus"), "bus.sock");
        File.WriteAllText(socketPath, "not a socket");

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () => await IpcEventBus.HostAsync(Options()));

        Assert.Multiple(() =>
        {
            Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.NotASocket));
            Assert.That(File.ReadAllText(socketPath), Is.EqualTo("not a socket"), "the file must not be touched");
        });
    }

    [Test]
    public async Task Disposing_the_host_removes_socket_lock_file_and_bus_directory()
    {
        var host = await IpcEventBus.HostAsync(Options());
        var busDirectory = Path.GetDirectoryName(host.SocketPath)!;
        Assert.That(File.Exists(Path.Combine(busDirectory, "bus.lock")), Is.True, "test setup: the lock file should exist while hosting");

        await host.DisposeAsync();

        Assert.Multiple(() =>
        {
            Assert.That(File.Exists(host.SocketPath), Is.False, "socket file");
            Assert.That(File.Exists(Path.Combine(busDirectory, "bus.lock")), Is.False, "lock file");
            Assert.That(Directory.Exists(busDirectory), Is.False, "bus directory");
            Assert.That(Directory.Exists(_root.Path), Is.True, "the root directory is shared by buses and stays");
        });
    }

    [Test]
    public async Task Bus_can_be_hosted_again_after_the_host_was_disposed()
    {
        await (await IpcEventBus.HostAsync(Options())).DisposeAsync();

        await using var again = await IpcEventBus.HostAsync(Options());

        Assert.That(again.IsHost, Is.True);
    }

    [Test]
    public void Socket_path_too_long_for_a_socket_address_is_refused_clearly()
    {
        var longRoot = Path.Combine(_root.Path, new string('r', 100));

        var ex = Assert.ThrowsAsync<IpcBusSetupException>(async () =>
            await IpcEventBus.HostAsync(IpcEventBusOptions.Default with { Name = "bus", RootDirectory = longRoot }));

        Assert.That(ex!.Failure, Is.EqualTo(IpcSetupFailure.SocketPathTooLong));
    }

    [TestCase("")]
    [TestCase("..")]
    [TestCase(".hidden")]
    [TestCase("a/b")]
    [TestCase("with space")]
    public void Invalid_bus_name_is_rejected_before_touching_the_filesystem(string name)
    {
        Assert.ThrowsAsync<ArgumentException>(async () =>
            await IpcEventBus.HostAsync(IpcEventBusOptions.Default with { Name = name, RootDirectory = _root.Path }));
        Assert.That(Directory.Exists(_root.Path), Is.False, "nothing should be created for an invalid name");
    }

    [Test]
    public void Default_root_is_per_user()
    {
        var root = IpcEventBusOptions.DefaultRootDirectory;
        var runtimeDir = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");

        var expected = string.IsNullOrEmpty(runtimeDir)
            ? Path.Combine(Path.GetTempPath(), $"onex-{TestNative.geteuid()}")
            : Path.Combine(runtimeDir, "onex");
        Assert.That(root, Is.EqualTo(expected));
    }

    // A host that died without cleaning up leaves its socket file with nobody listening. .NET unlinks the file when a
    // bound socket is disposed, so bind elsewhere, move the file into place, then close the listener.
    private static void CreateStaleSocket(string busDirectory)
    {
        var socketPath = Path.Combine(busDirectory, "bus.sock");
        var bindPath = Path.Combine(busDirectory, "dying.sock");
        using (var dying = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            dying.Bind(new UnixDomainSocketEndPoint(bindPath));
            dying.Listen();
            File.Move(bindPath, socketPath);
        }
    }
}
