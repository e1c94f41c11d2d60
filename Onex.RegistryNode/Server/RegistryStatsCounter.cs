namespace Onex.RegistryNode.Server;

/// <summary>Counts requests answered and errors by code. Owned by the registry thread.</summary>
internal sealed class RegistryStatsCounter
{
    private readonly Dictionary<string, long> _errorsByCode = new(StringComparer.Ordinal);

    /// <summary>Replies sent, successes and errors.</summary>
    public long RequestsServed { get; private set; }

    /// <summary>A snapshot of the error counts.</summary>
    public IReadOnlyDictionary<string, long> ErrorsByCode => new Dictionary<string, long>(_errorsByCode);

    public void Served() => RequestsServed++;

    public void Failed(string code)
    {
        RequestsServed++;
        _errorsByCode[code] = _errorsByCode.GetValueOrDefault(code) + 1;
    }
}
