namespace Onex.RegistryNode.Leases;

/// <summary>How the registry leases ports. Change with <c>with</c>: <c>LeaseOptions.Default with { DefaultTtl = ... }</c>.</summary>
public sealed record LeaseOptions
{
    /// <summary>The defaults below (PROTOCOL.md section 12).</summary>
    public static LeaseOptions Default { get; } = new();

    /// <summary>The ports the registry hands out. Any overlap with the kernel's ephemeral range is removed at start.</summary>
    public PortRange PortRange { get; init; } = new(20000, 29999);

    /// <summary>
    /// Where the kernel's ephemeral port range is read from (Linux). Ports in it are never leased, because the
    /// kernel may hand them to any outgoing connection at any moment. Null or a missing file: nothing excluded.
    /// </summary>
    public string? EphemeralRangePath { get; init; } = "/proc/sys/net/ipv4/ip_local_port_range";

    /// <summary>The host written into every lease (where the leased port is reachable).</summary>
    public string AdvertisedHost { get; init; } = "127.0.0.1";

    /// <summary>TTL granted when a request names none.</summary>
    public TimeSpan DefaultTtl { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Shortest TTL granted; shorter requests are raised to it.</summary>
    public TimeSpan MinTtl { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Longest TTL granted; longer requests are lowered to it.</summary>
    public TimeSpan MaxTtl { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How long a released, expired or conflicted port rests before it goes to the back of the free queue.</summary>
    public TimeSpan Quarantine { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a port that failed the free check (someone else is using it) rests before it is tried again.</summary>
    public TimeSpan BusyPortQuarantine { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the id of an expired lease is remembered, so a late renewal gets LEASE_EXPIRED rather than LEASE_NOT_FOUND.</summary>
    public TimeSpan ExpiredLeaseMemory { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How many expired lease ids are remembered at most (the oldest are forgotten first).</summary>
    public int ExpiredLeaseMemoryCapacity { get; init; } = 10_000;

    /// <summary>
    /// How old a free check made ahead of demand may be when its port is granted. While ports are being leased, a
    /// background verifier checks the ports at the front of the free queue (for tcp and udp); a grant takes such a
    /// port if it was checked free at most this long before, and checks a port inline otherwise. Zero: every grant
    /// checks inline (as portserver does). PROTOCOL.md section 7.
    /// </summary>
    public TimeSpan VerifiedPortFreshness { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Tests only: every background batch is answered from the kernel's socket tables where they can be read, instead of
    /// whichever way the verifier measures cheaper (<see cref="PortVerifier"/>).
    /// </summary>
    internal bool AlwaysReadSocketTables { get; init; }

    /// <summary>
    /// How many ports the background verifier keeps checked ahead of demand at most (1 to 4096; 0 turns it off). It
    /// works only as far ahead as ports were granted in the last <see cref="VerifiedPortFreshness"/>, so an idle
    /// registry checks nothing in the background; under load it is asked in batches of half of that, large
    /// enough to be answered from one reading of the kernel's socket tables (<c>SocketTable</c>).
    /// </summary>
    public int VerifiedPortBuffer { get; init; } = 4096;

    /// <summary>Most ports one request may ask for.</summary>
    public int MaxPortsPerRequest { get; init; } = 64;
}
