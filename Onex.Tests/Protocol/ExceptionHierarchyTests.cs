using System.Reflection;
using Onex.Errors;
using Onex.Tests.Client;

namespace Onex.Tests.Protocol;

/// <summary>One sealed exception type per catalogue code under an abstract root (issue 12).</summary>
public class ExceptionHierarchyTests
{
    private static IEnumerable<string> Codes() =>
        typeof(ErrorCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f => (string)f.GetRawConstantValue()!);

    [Test]
    public void Every_catalogue_code_has_its_own_sealed_type_that_keeps_the_code_details_and_origin()
    {
        var details = new Dictionary<string, string> { ["field"] = "x" };
        var types = new HashSet<Type>();
        foreach (var code in Codes())
        {
            var ex = OnexException.FromError(code, "message", details, "registry at tcp://127.0.0.1:1");
            Assert.Multiple(() =>
            {
                Assert.That(ex.Code, Is.EqualTo(code));
                Assert.That(ex.GetType().IsSealed, Is.True, code);
                Assert.That(ex, Is.Not.TypeOf<UnknownErrorException>(), $"{code} must have a type of its own");
                Assert.That(ex.Details, Is.SameAs(details));
                Assert.That(ex.Origin, Is.EqualTo("registry at tcp://127.0.0.1:1"));
            });
            Assert.That(types.Add(ex.GetType()), Is.True, $"{code} shares {ex.GetType().Name} with another code");
        }
        Assert.That(types, Has.Count.EqualTo(Codes().Count()));
    }

    [Test]
    public void The_root_and_the_categories_are_abstract_and_every_public_exception_is_sealed_or_abstract()
    {
        var exceptions = typeof(OnexException).Assembly.GetExportedTypes().Where(t => typeof(OnexException).IsAssignableFrom(t)).ToList();

        Assert.That(exceptions, Has.Count.GreaterThan(20));
        Assert.That(new[] { typeof(OnexException), typeof(LeaseException), typeof(ContractException), typeof(AccessDeniedException) }.Select(t => t.IsAbstract), Is.All.True);
        Assert.That(exceptions.Where(t => !t.IsAbstract && !t.IsSealed), Is.Empty);
    }

    [TestCase(ErrorCodes.PortExhausted, typeof(LeaseException))]
    [TestCase(ErrorCodes.PortUnavailable, typeof(LeaseException))]
    [TestCase(ErrorCodes.LeaseNotFound, typeof(LeaseException))]
    [TestCase(ErrorCodes.LeaseExpired, typeof(LeaseException))]
    [TestCase(ErrorCodes.Fenced, typeof(LeaseException))]
    [TestCase(ErrorCodes.SchemaInvalid, typeof(ContractException))]
    [TestCase(ErrorCodes.ContractConflict, typeof(ContractException))]
    [TestCase(ErrorCodes.Unauthenticated, typeof(AccessDeniedException))]
    [TestCase(ErrorCodes.PermissionDenied, typeof(AccessDeniedException))]
    [TestCase(ErrorCodes.QuotaExceeded, typeof(AccessDeniedException))]
    public void Codes_fall_under_their_category(string code, Type category) =>
        Assert.That(OnexException.Create(code, "m"), Is.InstanceOf(category));

    [Test]
    public void Not_owner_is_not_a_lease_error() =>
        Assert.That(OnexException.Create(ErrorCodes.NotOwner, "m"), Is.TypeOf<NotOwnerException>().And.Not.InstanceOf<LeaseException>());

    [Test]
    public void A_code_from_a_newer_peer_is_kept()
    {
        var ex = OnexException.FromError("RATE_LIMITED", "slow down");

        Assert.That(ex, Is.TypeOf<UnknownErrorException>());
        Assert.That(ex.Code, Is.EqualTo("RATE_LIMITED"));
    }

    [Test]
    public async Task Registering_a_bus_another_node_owns_raises_a_not_owner_error_not_a_lease_error()
    {
        await using var registry = await TestRegistry.StartAsync();
        await using var owner = await registry.ConnectAsync("owner-node");
        await using var other = await registry.ConnectAsync("other-node");
        await owner.RegisterBusAsync("orders", "zmq", ["tcp://127.0.0.1:1"]);

        var ex = Assert.ThrowsAsync<NotOwnerException>(async () => await other.RegisterBusAsync("orders", "zmq", ["tcp://127.0.0.1:2"]));

        Assert.That(ex!.Code, Is.EqualTo(ErrorCodes.NotOwner));
        Assert.That(ex.Message, Does.Contain("owner-node"));
    }
}
