using System.Globalization;

namespace Onex.RegistryNode.Leases;

/// <summary>The kernel's ephemeral port range, which the lease pool must stay out of.</summary>
internal static class EphemeralPorts
{
    /// <summary>
    /// Reads the range from a file in the format of <c>/proc/sys/net/ipv4/ip_local_port_range</c> (two numbers
    /// separated by whitespace). Null when the path is null or the file does not exist (not Linux).
    /// </summary>
    /// <exception cref="FormatException">The file exists but does not hold a range.</exception>
    public static PortRange? Read(string? path)
    {
        if (path is null || !File.Exists(path)) return null;
        var text = File.ReadAllText(path);
        var parts = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var last)
            || first > last)
            throw new FormatException($"{path} does not hold a port range: '{text.Trim()}'.");
        return new PortRange(first, last);
    }

    /// <summary>The ports of <paramref name="pool"/> outside <paramref name="ephemeral"/>, ascending.</summary>
    public static IReadOnlyList<int> Exclude(PortRange pool, PortRange? ephemeral)
    {
        var ports = new List<int>(pool.Count);
        for (var port = pool.First; port <= pool.Last; port++)
        {
            if (ephemeral is { } e && e.Contains(port)) continue;
            ports.Add(port);
        }
        return ports;
    }
}
