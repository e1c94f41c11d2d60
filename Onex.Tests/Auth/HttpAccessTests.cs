using System.Net;
using System.Net.Http.Headers;
using Onex.RegistryNode.Http;
using Onex.Tests.Http;
using Onex.Tests.Registry;

namespace Onex.Tests.Auth;

/// <summary>The HTTP endpoint of a node with an auth file: views and metrics need an admin token; health stays open.</summary>
public class HttpAccessTests
{
    [Test]
    public async Task Views_and_metrics_need_an_admin_token_by_header_or_cookie_and_health_stays_open()
    {
        using var files = new AuthTestFiles();
        await using var node = await TestNodes.StartAsync(o => o with { AuthFile = files.Path });
        var http = await RegistryHttpServer.StartAsync(node, "http://127.0.0.1:0", Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        try
        {
            using var client = HttpTestClient.Create(http.Url);
            async Task<HttpStatusCode> Get(string path, string? bearer = null, string? cookie = null)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                if (bearer is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
                if (cookie is not null) request.Headers.Add("Cookie", $"{HttpAccess.Cookie}={Uri.EscapeDataString(cookie)}");
                using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                return response.StatusCode;
            }
            Assert.Multiple(async () =>
            {
                Assert.That(await Get("/api/snapshot"), Is.EqualTo(HttpStatusCode.Unauthorized), "no token");
                Assert.That(await Get("/metrics", bearer: "onex_not-a-token"), Is.EqualTo(HttpStatusCode.Unauthorized), "unknown token");
                Assert.That(await Get("/api/snapshot", bearer: files.ReaderA), Is.EqualTo(HttpStatusCode.Forbidden), "a reader sees only its tenant; the views show all");
                Assert.That(await Get("/api/snapshot", bearer: files.Admin), Is.EqualTo(HttpStatusCode.OK), "admin by header");
                Assert.That(await Get("/metrics", cookie: files.Admin), Is.EqualTo(HttpStatusCode.OK), "admin by the dashboard's cookie");
                Assert.That(await Get("/healthz"), Is.EqualTo(HttpStatusCode.OK), "liveness stays open");
                Assert.That(await Get("/"), Is.EqualTo(HttpStatusCode.OK), "the page itself (it asks for the token)");
            });
        }
        finally
        {
            await http.DisposeAsync();
        }
    }
}
