using System.Runtime.Versioning;

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

    /// <summary>
    /// Creates the root and <c>&lt;root&gt;/&lt;busName&gt;</c> with mode 0700, as a host would, and returns the bus
    /// directory. (Directory.CreateDirectory applies the mode to the last directory only, so the root goes first.)
    /// </summary>
    [SupportedOSPlatform("linux")]
    public string CreateBusDirectory(string busName)
    {
        const UnixFileMode privateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(Path, privateMode);
        return Directory.CreateDirectory(System.IO.Path.Combine(Path, busName), privateMode).FullName;
    }

    public void Dispose()
    {
        if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
    }
}
