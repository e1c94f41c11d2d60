using Onex.Errors;
using Onex.RegistryNode.Server;

namespace Onex.RegistryNode.Cluster;

/// <summary>
/// The cluster claims under way, on the registry thread (like all state). A registration that needs a claim starts it
/// (or joins the one under way for the same name) and is parked: the claim runs against the bucket off the registry
/// thread, which keeps serving every other request, and when it is decided the parked requests are dispatched again,
/// on the registry thread, with the decision at hand. What they change is committed and broadcast with that wake-up,
/// so the write-ahead rule holds as for any request. Parked requests are bounded in number and bytes.
/// </summary>
internal sealed class ClusterClaims
{
    /// <summary>Requests parked at once, over all claims; past it a registration needing a claim is UNAVAILABLE (reason <c>cluster</c>).</summary>
    public const int MaxParked = 1_024;

    /// <summary>Bytes of parked request frames, over all claims.</summary>
    public const long MaxParkedBytes = 32L * 1024 * 1024;

    private readonly ClusterMember _member;
    // One claim per name of a tenant at a time: two nodes of this host asking for one new name must not both "take over" this host's claim.
    private readonly Dictionary<(string Tenant, string Kind, string Name), PendingClaim> _inFlight = [];
    private Decision? _decision;
    private int _parked;
    private long _parkedBytes;

    public ClusterClaims(ClusterMember member) => _member = member;

    /// <summary>Claims under way (tests and diagnostics; registry thread).</summary>
    public int InFlight => _inFlight.Count;

    /// <summary>Requests parked (registry thread).</summary>
    public int Parked => _parked;

    /// <summary>
    /// Registry thread. Returns the revision of a claim created for this registration (to release it if the local
    /// registration then fails), or null when the claim was already this node's; throws NOT_OWNER or CONTRACT_CONFLICT
    /// when another host holds it, UNAVAILABLE (reason <c>cluster</c>) when the cluster cannot decide, and
    /// <see cref="RequestParkedException"/> while the decision is under way (the request is dispatched again then).
    /// </summary>
    public ulong? Require(string tenant, string kind, string name, string nodeId, string? fingerprint)
    {
        if (_decision is { } decided && decided.Tenant == tenant && decided.Kind == kind && decided.Name == name && decided.NodeId == nodeId
            && decided.Fingerprint == fingerprint)
        {
            if (decided.Error is not null) throw decided.Error;
            // The revision goes to one registration only: that one releases the claim if its registration fails.
            var revision = decided.Used ? null : decided.Revision;
            decided.Used = true;
            return revision;
        }
        if (_inFlight.TryGetValue((tenant, kind, name), out var pending)) throw new RequestParkedException(pending);
        pending = new PendingClaim(this, tenant, kind, name, nodeId, fingerprint);
        _inFlight[(tenant, kind, name)] = pending;
        _member.StartClaim(tenant, kind, name, nodeId, fingerprint, (revision, error) => Complete(pending, revision, error));
        throw new RequestParkedException(pending);
    }

    private bool TryPark(PendingClaim claim, int bytes, Action resume)
    {
        if (_parked >= MaxParked || _parkedBytes + bytes > MaxParkedBytes) return false;
        _parked++;
        _parkedBytes += bytes;
        claim.Waiters.Add((bytes, resume));
        return true;
    }

    /// <summary>Registry thread: the bucket decided (or could not); every request parked on the claim runs again, in arrival order.</summary>
    private void Complete(PendingClaim claim, ulong? revision, OnexException? error)
    {
        if (_inFlight.TryGetValue((claim.Tenant, claim.Kind, claim.Name), out var current) && current == claim) _inFlight.Remove((claim.Tenant, claim.Kind, claim.Name));
        var decision = new Decision(claim.Tenant, claim.Kind, claim.Name, claim.NodeId, claim.Fingerprint, revision, error);
        _decision = decision;
        try
        {
            foreach (var (bytes, resume) in claim.Waiters)
            {
                _parked--;
                _parkedBytes -= bytes;
                resume();
            }
        }
        finally
        {
            _decision = null;
            // Created for requests that no longer wanted it (answered from elsewhere meanwhile, or refused before using it).
            if (error is null && revision is { } created && !decision.Used) _member.Unclaim(claim.Tenant, claim.Kind, claim.Name, created);
        }
    }

    private sealed class PendingClaim(ClusterClaims owner, string tenant, string kind, string name, string nodeId, string? fingerprint) : IRequestParking
    {
        public string Tenant { get; } = tenant;
        public string Kind { get; } = kind;
        public string Name { get; } = name;
        public string NodeId { get; } = nodeId;
        public string? Fingerprint { get; } = fingerprint;
        public List<(int Bytes, Action Resume)> Waiters { get; } = [];

        public bool TryPark(int bytes, Action resume) => owner.TryPark(this, bytes, resume);
    }

    private sealed record Decision(string Tenant, string Kind, string Name, string NodeId, string? Fingerprint, ulong? Revision, OnexException? Error)
    {
        public bool Used { get; set; }
    }
}
