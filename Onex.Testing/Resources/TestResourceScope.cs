namespace Onex.Testing.Resources;

/// <summary>
/// What one test (or the whole run) acquired through the kit, disposed together, last acquired first, when the scope
/// closes. Something acquired after the scope closed (a background task outliving its test) is disposed at once.
/// </summary>
internal sealed class TestResourceScope(string name)
{
    private readonly Lock _gate = new();
    private readonly List<IAsyncDisposable> _resources = [];
    private readonly Dictionary<string, Task<RegistryNode.Leases.PortRange>> _ranges = new(StringComparer.Ordinal);
    private bool _closed;

    /// <summary>The test's full name (for a run scope: what acquired, see <see cref="TestResources.Current"/>).</summary>
    public string Name { get; } = name;

    /// <summary>How many resources wait for the scope to close.</summary>
    public int Count
    {
        get { lock (_gate) return _resources.Count; }
    }

    /// <summary>Adds <paramref name="resource"/>; false when the scope has already closed (the caller disposes it).</summary>
    public bool TryAdd(IAsyncDisposable resource)
    {
        lock (_gate)
        {
            if (_closed) return false;
            _resources.Add(resource);
            return true;
        }
    }

    /// <summary>
    /// The port range reserved for <paramref name="owner"/> in this scope, reserved by <paramref name="reserve"/> on the
    /// first call: a test that restarts its own registry gets the same range each time.
    /// </summary>
    public Task<RegistryNode.Leases.PortRange> RangeFor(string owner, Func<Task<RegistryNode.Leases.PortRange>> reserve)
    {
        lock (_gate)
        {
            if (!_ranges.TryGetValue(owner, out var range) || range.IsFaulted || range.IsCanceled)
                _ranges[owner] = range = reserve();
            return range;
        }
    }

    /// <summary>
    /// Disposes everything, last acquired first, within <paramref name="timeout"/> in all. Returns what went wrong,
    /// one line each, for the test output; a failing dispose does not stop the others.
    /// </summary>
    public async Task<IReadOnlyList<string>> CloseAsync(TimeSpan timeout, TimeProvider time)
    {
        IAsyncDisposable[] resources;
        lock (_gate)
        {
            _closed = true;
            resources = [.. _resources];
            _resources.Clear();
        }
        var problems = new List<string>();
        var started = time.GetTimestamp();
        for (var i = resources.Length - 1; i >= 0; i--)
        {
            var remaining = timeout - time.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                problems.Add($"cleanup ran out of time ({timeout.TotalSeconds:0.#} s); {i + 1} resource(s) not disposed, " +
                             "their leases end by TTL");
                break;
            }
            try
            {
                await resources[i].DisposeAsync().AsTask().WaitAsync(remaining, time).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                problems.Add($"disposing {Describe(resources[i])} took longer than {timeout.TotalSeconds:0.#} s");
            }
            catch (Exception ex)
            {
                // The test already has its result; a cleanup failure is reported beside it, not thrown over it.
                problems.Add($"disposing {Describe(resources[i])} failed: {ex.GetType().Name}: {ex.Message}");
            }
        }
        return problems;
    }

    private static string Describe(IAsyncDisposable resource) => resource switch
    {
        Transports.Registry.PortLeaseSet set => $"the leases of port(s) {string.Join(", ", set.Ports)}",
        _ => resource.ToString() ?? resource.GetType().Name,
    };
}
