using System.Collections.Concurrent;
using NUnit.Framework;
using NUnit.Framework.Interfaces;
using Onex.Testing.Registry;

namespace Onex.Testing.Resources;

/// <summary>
/// The resource scopes of running tests, keyed by NUnit test id, and the scope of the run as a whole (what
/// <c>[OneTimeSetUp]</c> acquires). <see cref="OnexTestResourcesAttribute"/> opens and closes them.
/// </summary>
internal static class TestResources
{
    private static readonly ConcurrentDictionary<string, TestResourceScope> Tests = new(StringComparer.Ordinal);
    private static readonly Lock RunGate = new();
    private static TestResourceScope _run = new("test run");
    private static int _activeRuns;

    /// <summary>The name of the test assembly being run, for the registry's node list.</summary>
    public static string RunName { get; private set; } = "tests";

    /// <summary>How many runs with the attribute are under way (a test may run a nested NUnit run).</summary>
    public static int ActiveRuns => Volatile.Read(ref _activeRuns);

    public static void RunStarted(ITest assembly)
    {
        if (Interlocked.Increment(ref _activeRuns) == 1) RunName = assembly.Name;
    }

    /// <summary>Closes the run scope and shuts the registry down once the outermost run ends.</summary>
    public static void RunFinished()
    {
        if (Interlocked.Decrement(ref _activeRuns) != 0) return;
        TestResourceScope run;
        lock (RunGate)
        {
            run = _run;
            _run = new TestResourceScope("test run");
        }
        Close(run, "the test run");
        Task.Run(() => OnexTestEnvironment.ShutdownAsync().AsTask()).GetAwaiter().GetResult();
    }

    public static void TestStarted(ITest test) => Tests.TryAdd(test.Id, new TestResourceScope(test.FullName));

    public static void TestFinished(ITest test)
    {
        if (Tests.TryRemove(test.Id, out var scope)) Close(scope, test.FullName);
    }

    /// <summary>
    /// Where a resource acquired now belongs, and the purpose to record with leases: the running test's scope, or,
    /// outside a test (<c>[OneTimeSetUp]</c>), the run's.
    /// </summary>
    /// <exception cref="InvalidOperationException">A test is running but the assembly lacks <c>[assembly: OnexTestResources]</c>.</exception>
    public static (TestResourceScope Scope, string Purpose) Current()
    {
        var test = TestContext.CurrentContext.Test;
        if (test.MethodName is null)
        {
            lock (RunGate) return (_run, test.FullName);
        }
        if (Tests.TryGetValue(test.ID, out var scope)) return (scope, scope.Name);
        throw new InvalidOperationException(ActiveRuns == 0
            ? $"Onex.Testing cannot tie resources to test '{test.FullName}': add [assembly: Onex.Testing.OnexTestResources] to the test assembly " +
              "so they are released after each test."
            : $"Test '{test.FullName}' has already finished; what it acquires now could not be released after it.");
    }

    /// <summary>Adds <paramref name="resource"/> to <paramref name="scope"/>, or disposes it at once when the scope has closed.</summary>
    public static async ValueTask<T> AddAsync<T>(TestResourceScope scope, T resource) where T : IAsyncDisposable
    {
        if (scope.TryAdd(resource)) return resource;
        await resource.DisposeAsync().ConfigureAwait(false);
        throw new InvalidOperationException($"'{scope.Name}' has already finished; what it acquired afterwards was released at once.");
    }

    private static void Close(TestResourceScope scope, string what)
    {
        if (scope.Count == 0) return;
        // AfterTest is synchronous; the thread pool keeps the wait free of any synchronization context NUnit installed.
        var problems = Task.Run(() => scope.CloseAsync(OnexTestEnvironment.Options.CleanupTimeout, TimeProvider.System)).GetAwaiter().GetResult();
        foreach (var problem in problems)
            TestContext.Progress.WriteLine($"onex-testing: cleanup after {what}: {problem}");
    }
}
