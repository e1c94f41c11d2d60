namespace Onex.Cli.Hold;

/// <summary>
/// Console.In, touched only when read. Getting Console.In sets up the terminal (tcsetattr) when stdin is one, and a
/// process started with <c>&amp;</c> from an interactive shell is then stopped by the terminal (SIGTTOU), so a
/// command that never reads stdin must never get it.
/// </summary>
internal sealed class LazyConsoleInput : TextReader
{
    public override int Peek() => Console.In.Peek();

    public override int Read() => Console.In.Read();

    public override string? ReadLine() => Console.In.ReadLine();
}
