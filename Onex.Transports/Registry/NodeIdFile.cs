namespace Onex.Transports.Registry;

/// <summary>
/// A node id kept in a file, so a restarted process is the same node to the registry: it re-registers its buses and
/// tools as their owner and reclaims the ports its previous run leased (PROTOCOL.md, "A host that comes back").
/// The file holds the id on one line. A missing file is created with a new id (<c>machine-random</c>).
/// </summary>
public static class NodeIdFile
{
    /// <summary>Longest id accepted, as the registry's identifier rule (PROTOCOL.md section 6).</summary>
    public const int MaxLength = 256;

    /// <summary>
    /// The id stored in <paramref name="path"/>; when the file does not exist, a new id written there first. Two
    /// processes creating the file at once agree on one id (the file is created exclusively; the loser reads it).
    /// </summary>
    /// <exception cref="ArgumentException">The file holds no valid id (empty, whitespace or control characters inside, too long).</exception>
    /// <exception cref="IOException">The file cannot be read or created.</exception>
    public static string ReadOrCreate(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
        {
            var created = $"{Environment.MachineName.ToLowerInvariant()}-{Guid.NewGuid():N}";
            var directory = Path.GetDirectoryName(Path.GetFullPath(path));
            if (directory is not null) Directory.CreateDirectory(directory);
            try
            {
                using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                using var writer = new StreamWriter(stream);
                writer.WriteLine(created);
                writer.Flush();
                stream.Flush(flushToDisk: true);
                return created;
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another process created it first: its id wins.
            }
        }
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>The id in a node id file's text: the trimmed first line.</summary>
    /// <exception cref="ArgumentException">No valid id.</exception>
    public static string Parse(string text, string path)
    {
        ArgumentNullException.ThrowIfNull(text);
        var id = text.Split('\n', 2)[0].Trim();
        if (id.Length == 0)
            throw new ArgumentException($"The node id file '{path}' is empty; delete it to get a new id, or write one id in it.");
        if (id.Length > MaxLength)
            throw new ArgumentException($"The node id in '{path}' is longer than {MaxLength} characters.");
        foreach (var c in id)
            if (char.IsWhiteSpace(c) || char.IsControl(c))
                throw new ArgumentException($"The node id in '{path}' contains whitespace or control characters; a node id is one word.");
        return id;
    }
}
