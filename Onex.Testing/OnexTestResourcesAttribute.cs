using NUnit.Framework;
using NUnit.Framework.Interfaces;
using Onex.Testing.Resources;

namespace Onex.Testing;

/// <summary>
/// Ties what a test acquires through <see cref="OnexTest"/> to that test: after it ends (after its
/// <c>[TearDown]</c>, whether it passed, failed or threw) its buses are disposed and its port leases released, last
/// acquired first. What <c>[OneTimeSetUp]</c> acquires lives until the end of the run. At the end of the run the
/// process's registry client departs and an in-process registry stops.
/// <para>Apply it once, to the test assembly: <c>[assembly: Onex.Testing.OnexTestResources]</c>.</para>
/// </summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = false)]
public sealed class OnexTestResourcesAttribute : Attribute, ITestAction
{
    /// <summary>Every test, and the assembly suite (for the end of the run).</summary>
    public ActionTargets Targets => ActionTargets.Test | ActionTargets.Suite;

    /// <summary>Opens the scope of a test; notes the start of the run.</summary>
    public void BeforeTest(ITest test)
    {
        ArgumentNullException.ThrowIfNull(test);
        if (!test.IsSuite) TestResources.TestStarted(test);
        else if (IsAssembly(test)) TestResources.RunStarted(test);
    }

    /// <summary>Disposes what the test acquired; at the end of the run, what the run acquired, and the registry connection.</summary>
    public void AfterTest(ITest test)
    {
        ArgumentNullException.ThrowIfNull(test);
        if (!test.IsSuite) TestResources.TestFinished(test);
        else if (IsAssembly(test)) TestResources.RunFinished();
    }

    private static bool IsAssembly(ITest test) => test.TestType == "Assembly";
}
