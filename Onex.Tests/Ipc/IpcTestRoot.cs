namespace Onex.Tests.Ipc;

/// <summary>
/// A private root directory for one test or fixture: a fresh path under the temp directory that the bus creates
/// itself (mode 0700), removed with everything in it on dispose. Short, so socket paths stay under 107 bytes.
/// </summary>
public sealed class IpcTestRoot : IDisposable
{
    public IpcTestRoot()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "onex-it-" + Guid.NewGuid().ToString("N")[..10]);
    }

    /// <summary>The root directory (not created until a bus or the test creates it).</summary>
    public string Path { get; }

    /// <summary>Where a bus named <paramref name="busName"/> keeps its socket.</summary>
    public string SocketPathOf(string busName) => System.IO.Path.Combine(Path, busName, "bus.sock");

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}
