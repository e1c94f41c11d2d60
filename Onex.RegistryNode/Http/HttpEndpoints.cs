using System.Net;

namespace Onex.RegistryNode.Http;

/// <summary>The form of <c>--http</c>: <c>http://IP:PORT</c> (an IP literal, port 0 for an OS-chosen one).</summary>
internal static class HttpEndpoints
{
    public static bool TryParse(string text, out IPEndPoint endpoint, out string problem)
    {
        endpoint = new IPEndPoint(IPAddress.Loopback, 0);
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            problem = "is not an http:// address";
            return false;
        }
        if (uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.Fragment.Length > 0 || uri.UserInfo.Length > 0)
        {
            problem = "has more than a scheme, host and port";
            return false;
        }
        if (!IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address))
        {
            problem = "does not name an IP address (use 127.0.0.1, not a host name)";
            return false;
        }
        if (uri.IsDefaultPort && !text.Contains(":80", StringComparison.Ordinal))
        {
            problem = "names no port";
            return false;
        }
        endpoint = new IPEndPoint(address, uri.Port);
        problem = "";
        return true;
    }
}
