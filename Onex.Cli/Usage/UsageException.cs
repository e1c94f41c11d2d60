namespace Onex.Cli.Usage;

/// <summary>
/// The command line asks for something that cannot be done as written (a value the parser could not judge alone, such
/// as joining a memory bus from another process). <c>onex</c> prints the message as one line and exits 2; the message
/// says what is wrong and what to type instead.
/// </summary>
internal sealed class UsageException(string message) : Exception(message);
