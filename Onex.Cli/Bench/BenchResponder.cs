namespace Onex.Cli.Bench;

/// <summary>
/// The answering side of a ping-pong, running beside the pinger. If it fails, the pinger's token is cancelled so the
/// pinger stops waiting for a pong that will never come, and <see cref="StopAsync"/> rethrows the failure.
/// </summary>
internal sealed class BenchResponder : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly CancellationTokenSource _abortPinger;
    private readonly Task _task;

    private BenchResponder(Func<CancellationToken, Task> answer, CancellationToken cancellationToken)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _abortPinger = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _task = Task.Run(() => RunAsync(answer), CancellationToken.None);
    }

    /// <summary>Starts <paramref name="answer"/>; <paramref name="pingerToken"/> is what the pinger waits with.</summary>
    public static BenchResponder Start(Func<CancellationToken, Task> answer, CancellationToken cancellationToken, out CancellationToken pingerToken)
    {
        var responder = new BenchResponder(answer, cancellationToken);
        pingerToken = responder._abortPinger.Token;
        return responder;
    }

    /// <summary>
    /// Stops the responder and waits for it; rethrows its failure, if it failed. With <paramref name="cancel"/> false it
    /// is only waited for: a responder told to end in-band (an end marker on its stream) must read that marker, or the
    /// marker would be left for the next measurement to read.
    /// </summary>
    public async Task StopAsync(bool cancel = true)
    {
        if (cancel) await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _task.ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped on purpose.
        }
    }

    public void Dispose()
    {
        _stop.Dispose();
        _abortPinger.Dispose();
    }

    private async Task RunAsync(Func<CancellationToken, Task> answer)
    {
        try
        {
            await answer(_stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
        {
            await _abortPinger.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }
}
