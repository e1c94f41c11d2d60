using System.Collections.Concurrent;
using System.Diagnostics;
using Onex.Errors;
using Onex.Protocol;
using Onex.Tests.Infrastructure;
using Onex.Transports.Registry;

namespace Onex.Tests.Client;

/// <summary>Request correlation, retries and error mapping of <see cref="RegistryClient"/>, against a scripted ROUTER.</summary>
public class RegistryRequestTests
{
    private static RegistryClientOptions OptionsFor(ScriptedRegistry registry) => new()
    {
        Endpoint = registry.Endpoint,
        PubEndpoint = "tcp://127.0.0.1:1", // never used: these clients do not announce or watch
        AnnounceNode = false,
        DepartOnDispose = false,
        RequestTimeout = TimeSpan.FromMilliseconds(300),
        MaxAttempts = 3,
        RetryBaseDelay = TimeSpan.FromMilliseconds(10),
        RetryMaxDelay = TimeSpan.FromMilliseconds(50),
    };

    private static IntrospectionResponse Answer(long sequence) => new() { Epoch = "scripted", Sequence = sequence };

    [Test]
    public async Task Concurrent_requests_answered_in_reverse_order_each_get_their_own_reply()
    {
        const int count = 50;
        var held = new ConcurrentQueue<(byte[] Identity, RegistryEnvelope Request)>();
        using var registry = new ScriptedRegistry((self, identity, request) =>
        {
            held.Enqueue((identity, request));
            if (held.Count == count)
            {
                foreach (var (who, what) in held.Reverse())
                {
                    var asked = long.Parse(what.BodyAs<IntrospectionRequest>().NamePrefix!);
                    self.SendLater(who, ScriptedRegistry.Reply(what, Answer(asked)));
                }
            }
            return null;
        });
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { RequestTimeout = TimeSpan.FromSeconds(10) });

        var replies = await Task.WhenAll(Enumerable.Range(0, count).Select(i =>
            client.DescribeAsync(new IntrospectionRequest { NamePrefix = i.ToString() }).AsTask()));

        Assert.That(replies.Select(r => r.Sequence), Is.EqualTo(Enumerable.Range(0, count).Select(i => (long)i)),
            "each caller should receive the reply carrying its own request id, whatever the reply order");
        Assert.That(registry.Received.Select(r => r.RequestId).Distinct().Count(), Is.EqualTo(count), "request ids must be unique per request");
        Assert.That(client.RequestsInFlight, Is.Zero, "answered requests must not stay registered as in flight");
    }

    [Test]
    public async Task Requests_from_many_threads_at_once_each_reach_the_registry_exactly_once()
    {
        // Callers hand frames to the socket's thread through one queue and wake it at most once per batch: none may be
        // stranded in the queue or sent twice, however the callers interleave with the thread's draining.
        const int callers = 16;
        const int perCaller = 200;
        using var registry = new ScriptedRegistry((_, _, request) =>
            ScriptedRegistry.Reply(request, Answer(long.Parse(request.BodyAs<IntrospectionRequest>().NamePrefix!))));
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { RequestTimeout = TimeSpan.FromSeconds(20), MaxAttempts = 1 });

        var answered = await Task.WhenAll(Enumerable.Range(0, callers).Select(c => Task.Run(async () =>
        {
            var sequences = new List<long>();
            for (var i = 0; i < perCaller; i++)
                sequences.Add((await client.DescribeAsync(new IntrospectionRequest { NamePrefix = (c * perCaller + i).ToString() })).Sequence);
            return sequences;
        })));

        Assert.That(answered.SelectMany(s => s).Order(), Is.EqualTo(Enumerable.Range(0, callers * perCaller).Select(i => (long)i)),
            "every caller should get the answer to each of its own requests");
        Assert.That(registry.Received, Has.Count.EqualTo(callers * perCaller), "each request should be sent exactly once (one attempt each: a stranded frame would have failed its caller)");
        Assert.That(client.RequestsInFlight, Is.Zero);
    }

    [Test]
    public async Task A_request_whose_reply_is_lost_is_resent_with_the_same_request_id()
    {
        var seen = new ConcurrentDictionary<string, int>();
        using var registry = new ScriptedRegistry((_, _, request) =>
            seen.AddOrUpdate(request.RequestId, 1, (_, n) => n + 1) == 1 ? null : ScriptedRegistry.Reply(request, Answer(7)));
        // The lost attempt times out; the answered one must not, even on a loaded machine (300 ms once let a third go).
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { RequestTimeout = TimeSpan.FromSeconds(2) });

        var reply = await client.DescribeAsync();

        Assert.That(reply.Sequence, Is.EqualTo(7));
        var attempts = registry.Received.ToArray();
        Assert.That(attempts, Has.Length.EqualTo(2), "one lost attempt and one retry were expected");
        Assert.That(attempts[1].RequestId, Is.EqualTo(attempts[0].RequestId), "a retry must reuse the request id so the registry can deduplicate it");
        Assert.That(attempts[1].ClientId, Is.EqualTo(attempts[0].ClientId), "a retry must reuse the client id");
    }

    [Test]
    public async Task A_registry_that_never_answers_gives_unavailable_naming_the_endpoint_after_the_last_attempt()
    {
        using var registry = new ScriptedRegistry((_, _, _) => null);
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry));

        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await client.DescribeAsync());

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.Unavailable));
        Assert.That(ex.Message, Does.Contain(registry.Endpoint).And.Contain("onex registry serve"));
        Assert.That(ex.Details["attempts"], Is.EqualTo("3"));
        // The client gives up 300 ms after sending its last attempt, but the scripted registry's thread may not have
        // taken that attempt in yet: on a loaded machine it had 2 of 3. Wait for the attempt itself, bounded.
        var deadline = Stopwatch.StartNew();
        while (registry.Received.Count < 3 && deadline.Elapsed < Waits.Default)
            await Task.Delay(TimeSpan.FromMilliseconds(10));
        Assert.That(registry.Received, Has.Count.EqualTo(3), "every attempt should have reached the registry");
    }

    [Test]
    public async Task Each_resend_is_logged_once_with_its_attempt_number()
    {
        // The first attempt goes out before the retry pipeline, which replays its failure: the replay is not an attempt.
        using var registry = new ScriptedRegistry((_, _, _) => null);
        using var logs = new CapturingLoggerFactory();
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { LoggerFactory = logs });

        Assert.ThrowsAsync<UnavailableException>(async () => await client.DescribeAsync());

        var resends = logs.Entries.Where(e => e.EventId.Id == 3005).Select(e => e.Message).ToArray();
        Assert.That(resends, Has.Length.EqualTo(2), $"two resends after the first attempt were expected: {string.Join(" | ", resends)}");
        Assert.That(resends[0], Does.Contain("(attempt 2)"));
        Assert.That(resends[1], Does.Contain("(attempt 3)"));
        Assert.That(registry.Received, Has.Count.EqualTo(3));
    }

    [Test]
    public async Task A_request_whose_caller_has_already_given_up_is_not_sent()
    {
        using var registry = new ScriptedRegistry((_, _, request) => ScriptedRegistry.Reply(request, Answer(1)));
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry));

        Assert.CatchAsync<OperationCanceledException>(async () =>
            await client.DescribeAsync(new IntrospectionRequest { NamePrefix = "cancelled" }, new CancellationToken(canceled: true)));
        // One DEALER keeps order: once this one is answered, a frame of the cancelled one would have arrived before it.
        await client.DescribeAsync(new IntrospectionRequest { NamePrefix = "after" });

        Assert.That(registry.Received.Select(r => r.BodyAs<IntrospectionRequest>().NamePrefix), Is.EqualTo(new[] { "after" }),
            "a request cancelled before it was sent must not reach the registry");
        Assert.That(client.RequestsInFlight, Is.Zero);
    }

    [Test]
    public async Task A_caller_cancelling_while_waiting_gets_cancellation_and_leaves_nothing_in_flight()
    {
        var onTheWire = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registry = new ScriptedRegistry((_, _, _) =>
        {
            onTheWire.TrySetResult();
            return null;
        });
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { RequestTimeout = TimeSpan.FromSeconds(10) });
        using var cancel = new CancellationTokenSource();

        var request = client.DescribeAsync(cancellationToken: cancel.Token).AsTask();
        await onTheWire.Task;
        cancel.Cancel();

        Assert.CatchAsync<OperationCanceledException>(async () => await request);
        Assert.That(client.RequestsInFlight, Is.Zero, "a cancelled request must not stay registered as in flight");
        Assert.That(registry.Received, Has.Count.EqualTo(1), "cancellation is not retried");
    }

    [TestCase(ErrorCodes.PortExhausted, typeof(PortExhaustedException))]
    [TestCase(ErrorCodes.LeaseNotFound, typeof(LeaseNotFoundException))]
    [TestCase(ErrorCodes.ContractConflict, typeof(ContractConflictException))]
    [TestCase(ErrorCodes.NotFound, typeof(NotFoundException))]
    [TestCase(ErrorCodes.Malformed, typeof(MalformedMessageException))]
    [TestCase(ErrorCodes.InvalidArgument, typeof(InvalidArgumentException))]
    public async Task An_error_reply_surfaces_as_its_exception_type_with_the_code_and_is_not_retried(string code, Type expected)
    {
        using var registry = new ScriptedRegistry((_, _, request) => ScriptedRegistry.Reply(request, new Error
        {
            Code = code,
            Message = $"scripted {code}",
            Details = new Dictionary<string, string> { ["field"] = "count" },
        }));
        // Only the error reply may decide about a retry: a reply slower than 300 ms on a loaded machine was resent as lost.
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { RequestTimeout = TimeSpan.FromSeconds(10) });

        var ex = Assert.CatchAsync<OnexException>(async () => await client.DescribeAsync());

        Assert.That(ex, Is.TypeOf(expected));
        Assert.That(ex!.Code, Is.EqualTo(code));
        Assert.That(ex.Message, Is.EqualTo($"scripted {code}"));
        Assert.That(ex.Details["field"], Is.EqualTo("count"), "error details should travel with the exception");
        Assert.That(registry.Received, Has.Count.EqualTo(1), $"{code} is not transient and must not be retried");
    }

    [Test]
    public async Task An_unavailable_error_reply_is_retried()
    {
        var attempts = 0;
        using var registry = new ScriptedRegistry((_, _, request) => Interlocked.Increment(ref attempts) == 1
            ? ScriptedRegistry.Reply(request, new Error { Code = ErrorCodes.Unavailable, Message = "busy" })
            : ScriptedRegistry.Reply(request, Answer(3)));
        // Every attempt is answered: a timeout long enough that only the UNAVAILABLE reply causes the retry.
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { RequestTimeout = TimeSpan.FromSeconds(10) });

        var reply = await client.DescribeAsync();

        Assert.That(reply.Sequence, Is.EqualTo(3));
        Assert.That(registry.Received, Has.Count.EqualTo(2));
    }

    [Test]
    public async Task A_reply_of_the_wrong_type_is_malformed()
    {
        using var registry = new ScriptedRegistry((_, _, request) => ScriptedRegistry.Reply(request, new Ack()));
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry));

        var ex = Assert.ThrowsAsync<MalformedMessageException>(async () => await client.DescribeAsync());

        Assert.That(ex!.Message, Does.Contain("Ack").And.Contain("IntrospectionResponse"));
    }

    [Test]
    public async Task Connecting_with_announce_to_a_silent_registry_fails_with_unavailable()
    {
        using var registry = new ScriptedRegistry((_, _, _) => null);
        var options = OptionsFor(registry) with { AnnounceNode = true, MaxAttempts = 1, RequestTimeout = TimeSpan.FromMilliseconds(100) };

        var ex = Assert.ThrowsAsync<UnavailableException>(async () => await RegistryClient.ConnectAsync(options));

        Assert.That(ex!.Message, Does.Contain(registry.Endpoint));
    }

    [Test]
    public void Endpoints_come_from_options_then_environment_then_defaults()
    {
        Assert.That(RegistryEndpoints.ResolveRouter(" tcp://127.0.0.1:9 "), Is.EqualTo("tcp://127.0.0.1:9"));
        var fromEnvironment = Environment.GetEnvironmentVariable(RegistryEndpoints.RouterVariable);
        Assert.That(RegistryEndpoints.ResolveRouter(null),
            Is.EqualTo(string.IsNullOrWhiteSpace(fromEnvironment) ? RegistryEndpoints.DefaultRouter : fromEnvironment.Trim()));
    }

    [Test]
    public void Options_whose_retries_outlast_the_registrys_reply_memory_are_refused()
    {
        var options = new RegistryClientOptions { AnnounceNode = false, RequestTimeout = TimeSpan.FromSeconds(30), MaxAttempts = 3 };

        var ex = Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await RegistryClient.ConnectAsync(options));

        Assert.That(ex!.Message, Does.Contain("60 s"));
    }

    [Test]
    public async Task The_client_id_is_the_node_id_and_a_random_suffix()
    {
        using var registry = new ScriptedRegistry((_, _, request) => ScriptedRegistry.Reply(request, Answer(1)));
        await using var client = await RegistryClient.ConnectAsync(OptionsFor(registry) with { NodeId = "billing-1" });

        await client.DescribeAsync();

        Assert.That(registry.Received.Single().ClientId, Does.Match("^billing-1/[0-9a-f]{32}$"));
    }
}
