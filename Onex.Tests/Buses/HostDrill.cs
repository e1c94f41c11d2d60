using System.Threading.Channels;
using Onex.Bus;
using Onex.Transports.Buses;
using Onex.Transports.Registry;

namespace Onex.Tests.Buses;

/// <summary>
/// What the host kill-and-restart drills share (<see cref="HostRestartTests"/> for ZeroMQ,
/// <see cref="HostKillRestartFigureTests"/> for Unix sockets and JetStream): joining the bus through the registry,
/// reading the host's ticks and a participant's numbers with a bound, and the host's <c>--json</c> hosting line.
/// </summary>
internal static class HostDrill
{
    public static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan DeliveryLimit = TimeSpan.FromSeconds(30);

    public static async Task<IEventBus> JoinAsync(string backend, string name, RegistryClient client) =>
        await EventBusFactory.CreateAsync(EventBusOptions.Default with { Backend = backend, Name = name, Role = EventBusRole.Join, Registry = client });

    /// <summary>Reads the host's ticks (payload "number pid") until <paramref name="done"/> says so.</summary>
    public static async Task ReadTicksUntilAsync(IEventSubscription ticks, Func<long, int, bool> done, string what)
    {
        using var wait = new CancellationTokenSource(DeliveryLimit);
        try
        {
            while (true)
            {
                var evt = await ticks.Reader.ReadAsync(wait.Token);
                var parts = System.Text.Encoding.ASCII.GetString(evt.Payload.Span).Split(' ');
                if (done(long.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture))) return;
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"timed out after {DeliveryLimit.TotalSeconds} s waiting for {what}");
            throw;
        }
    }

    /// <summary>Reads <paramref name="numbers"/> until <paramref name="done"/> says so.</summary>
    public static async Task ReadUntilAsync(ChannelReader<int> numbers, Func<int, bool> done, string what)
    {
        using var wait = new CancellationTokenSource(DeliveryLimit);
        try
        {
            while (!done(await numbers.ReadAsync(wait.Token)))
            {
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"timed out after {DeliveryLimit.TotalSeconds} s waiting for {what}");
        }
    }

    /// <summary>A channel of <paramref name="bus"/>'s connection notices (Connected, Disconnected), in order.</summary>
    public static Channel<BusNotice> StatesOf(IEventBus bus)
    {
        var states = Channel.CreateUnbounded<BusNotice>();
        bus.Health.Notice += (_, notice) =>
        {
            if (notice.Kind == BusNoticeKind.ConnectionChanged) states.Writer.TryWrite(notice);
        };
        return states;
    }

    /// <summary>The next connection notice, within <see cref="StartLimit"/> (a host restart takes that long at most).</summary>
    public static async Task<BusNotice> NextStateAsync(Channel<BusNotice> states, string what)
    {
        using var wait = new CancellationTokenSource(StartLimit);
        try
        {
            return await states.Reader.ReadAsync(wait.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"timed out waiting for {what}");
            throw;
        }
    }

    /// <summary>The <c>onex bus host --json</c> line saying where the bus is hosted.</summary>
    public sealed record Hosting(string NodeId, IReadOnlyList<string> Endpoints)
    {
        public static Hosting Of(System.Text.Json.JsonElement line)
        {
            Assert.That(line.GetProperty("status").GetString(), Is.EqualTo("hosting"), line.ToString());
            return new Hosting(
                line.GetProperty("nodeId").GetString()!,
                line.GetProperty("endpoints").EnumerateArray().Select(e => e.GetString()!).ToArray());
        }
    }
}
