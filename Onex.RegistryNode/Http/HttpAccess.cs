using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Onex.RegistryNode.Auth;

namespace Onex.RegistryNode.Http;

/// <summary>
/// The HTTP endpoint with access control on: <c>/api/*</c> and <c>/metrics</c> need an admin token (their views show
/// every tenant), as <c>Authorization: Bearer TOKEN</c> or the <c>onex_token</c> cookie the dashboard sets when it asks
/// for one (an EventSource cannot send headers). No token or an unknown one: 401; a token that is not an admin's: 403.
/// <c>/healthz</c>, <c>/readyz</c> and the dashboard's page and assets stay open (they hold no state).
/// </summary>
internal static class HttpAccess
{
    /// <summary>The cookie the dashboard keeps the token in.</summary>
    public const string Cookie = "onex_token";

    public static void Use(WebApplication app, RegistryAuth auth) => app.Use(async (context, next) =>
    {
        var path = context.Request.Path;
        if (!path.StartsWithSegments("/api") && !path.StartsWithSegments("/metrics"))
        {
            await next(context).ConfigureAwait(false);
            return;
        }
        var caller = auth.Current.Authenticate(TokenOf(context.Request));
        if (caller is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer realm=\"onex-registry\"";
            await Problem(context, StatusCodes.Status401Unauthorized, "This registry requires an admin token: Authorization: Bearer TOKEN.").ConfigureAwait(false);
            return;
        }
        if (!caller.IsAdmin)
        {
            await Problem(context, StatusCodes.Status403Forbidden,
                $"Token '{caller.TokenName}' has the role {caller.Role}; the HTTP views show every tenant and need an admin token.").ConfigureAwait(false);
            return;
        }
        await next(context).ConfigureAwait(false);
    });

    private static string? TokenOf(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return header["Bearer ".Length..].Trim();
        return request.Cookies.TryGetValue(Cookie, out var cookie) ? Uri.UnescapeDataString(cookie) : null;
    }

    private static Task Problem(HttpContext context, int status, string detail)
    {
        context.Response.StatusCode = status;
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsJsonAsync(new { status, detail }, cancellationToken: context.RequestAborted);
    }
}
