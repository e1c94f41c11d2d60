namespace Onex.Tests.Http;

/// <summary>HTTP calls the endpoint tests share, with bounded waits.</summary>
internal static class HttpTestClient
{
    public static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    public static HttpClient Create(string baseUrl) => new() { BaseAddress = new Uri(baseUrl), Timeout = Wait };

    /// <summary>
    /// Reads <paramref name="path"/> until <paramref name="done"/> holds for its body (the HTTP side follows the
    /// registry asynchronously, like any subscriber); fails with the last body after <see cref="Wait"/>.
    /// </summary>
    public static async Task<string> GetUntilAsync(HttpClient http, string path, Func<string, bool> done, string what)
    {
        using var cts = new CancellationTokenSource(Wait);
        var body = "";
        while (!cts.IsCancellationRequested)
        {
            using (var response = await http.GetAsync(path, cts.Token)) // any status: a 503 may be what is waited out
                body = await response.Content.ReadAsStringAsync(cts.Token);
            if (done(body)) return body;
            await Task.Delay(20, cts.Token).ContinueWith(_ => { }); // polling an HTTP endpoint: there is nothing to await
        }
        Assert.Fail($"{what}: not seen within {Wait.TotalSeconds} s; last {path}:\n{body}");
        return body;
    }
}
