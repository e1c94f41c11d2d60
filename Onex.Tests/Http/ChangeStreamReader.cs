using System.Text.Json;

namespace Onex.Tests.Http;

/// <summary>Reads Server-Sent Events from <c>/api/changes</c>, one (event, JSON) pair at a time.</summary>
internal sealed class ChangeStreamReader : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private ChangeStreamReader(HttpResponseMessage response, StreamReader reader)
    {
        _response = response;
        _reader = reader;
    }

    public static async Task<ChangeStreamReader> OpenAsync(HttpClient http, string path)
    {
        var response = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead);
        if ((int)response.StatusCode != 200) // only then is the body finite: a stream's body never ends
            Assert.Fail($"GET {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        Assert.That(response.Content.Headers.ContentType?.MediaType, Is.EqualTo("text/event-stream"));
        return new ChangeStreamReader(response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }

    /// <summary>The next event; null when the server ended the stream. Fails after <see cref="HttpTestClient.Wait"/>.</summary>
    public async Task<(string Event, JsonElement Data)?> NextAsync()
    {
        using var cts = new CancellationTokenSource(HttpTestClient.Wait);
        string? name = null, data = null;
        while (true)
        {
            string? line;
            try
            {
                line = await _reader.ReadLineAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"no Server-Sent Event within {HttpTestClient.Wait.TotalSeconds} s");
                return null;
            }
            if (line is null) return null;
            if (line.Length == 0)
            {
                if (name is not null && data is not null) return (name, JsonDocument.Parse(data).RootElement.Clone());
                continue;
            }
            if (line.StartsWith("event: ", StringComparison.Ordinal)) name = line["event: ".Length..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal)) data = line["data: ".Length..];
        }
    }

    /// <summary>The next event other than a heartbeat.</summary>
    public async Task<(string Event, JsonElement Data)> NextNonHeartbeatAsync()
    {
        while (true)
        {
            var next = await NextAsync();
            Assert.That(next, Is.Not.Null, "the server ended the change stream");
            if (next!.Value.Event != "heartbeat") return next.Value;
        }
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }
}
