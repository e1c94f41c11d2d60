namespace Onex.RegistryNode.Server;

/// <summary>
/// Where a request waits whose answer needs something outside the registry thread (a cluster claim in the bucket).
/// </summary>
internal interface IRequestParking
{
    /// <summary>
    /// Parks a request of <paramref name="bytes"/> bytes: <paramref name="resume"/> runs on the registry thread once the
    /// wait is over (then the request is dispatched again, from the start). False when the parking is full (bounded).
    /// </summary>
    bool TryPark(int bytes, Action resume);
}

/// <summary>
/// Thrown by a handler that cannot answer before something outside the registry thread completes. Nothing was changed;
/// the dispatcher parks the request at <see cref="Parking"/> and keeps serving others. Not an <see cref="Onex.Errors.OnexException"/>:
/// it is never a reply.
/// </summary>
internal sealed class RequestParkedException(IRequestParking parking) : Exception("The request waits for the cluster.")
{
    public IRequestParking Parking { get; } = parking;
}
