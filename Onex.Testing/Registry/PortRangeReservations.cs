using Onex.Protocol;
using Onex.RegistryNode.Leases;
using Onex.Transports.Registry;

namespace Onex.Testing.Registry;

/// <summary>
/// Exclusive blocks of <see cref="OnexTestEnvironment.PrivatePortRange"/> for registries that tests start themselves.
/// Every such registry hands out ports from the start of its pool, so two of them with the same pool (in parallel
/// fixtures, or in two test processes) would grant the same ports; a block of its own prevents that.
/// <para>
/// The test registry is the lock: a claim on block <c>b</c> is a lease whose purpose names the block. After taking it,
/// the claimant lists the leases with that purpose; the claim with the lowest fencing token holds the block, the others
/// release theirs and try another block. Grants are serialized by the registry, so each claimant sees every earlier
/// claim, and exactly one claim wins. A claim lives as long as its lease: released after the test, expired when the
/// process dies.
/// </para>
/// </summary>
internal static class PortRangeReservations
{
    /// <summary>Ports per block: room for a test registry's pool (the most a test takes at once is 100).</summary>
    public const int BlockSize = 200;

    private const string PurposePrefix = "onex-testing port range ";

    /// <summary>Claims a free block; the returned lease holds it until disposed.</summary>
    /// <exception cref="InvalidOperationException">Every block is held (more registries at once than blocks).</exception>
    public static async Task<(PortRange Range, PortLeaseSet Claim)> ClaimAsync(RegistryClient registry, CancellationToken cancellationToken)
    {
        var all = OnexTestEnvironment.PrivatePortRange;
        var blocks = all.Count / BlockSize;
        var first = Random.Shared.Next(blocks);
        for (var attempt = 0; attempt < blocks; attempt++)
        {
            var block = (first + attempt) % blocks;
            var range = new PortRange(all.First + block * BlockSize, all.First + (block + 1) * BlockSize - 1);
            var purpose = PurposePrefix + range;
            var claim = await registry.LeasePortAsync(new LeaseRequestOptions { Purpose = purpose, Protocol = PortProtocols.Tcp }, cancellationToken)
                .ConfigureAwait(false);
            var claims = await registry.DescribeAsync(new IntrospectionRequest { Include = [IntrospectionSections.Leases], NamePrefix = purpose }, cancellationToken)
                .ConfigureAwait(false);
            var holder = claims.Leases!.Where(l => l.Purpose == purpose).MinBy(l => l.FencingToken);
            if (holder?.LeaseId == claim.Leases[0].LeaseId) return (range, claim);
            await claim.DisposeAsync().ConfigureAwait(false);
        }
        throw new InvalidOperationException(
            $"All {blocks} blocks of {all} are reserved by running tests; fewer tests may run their own registry at once.");
    }
}
