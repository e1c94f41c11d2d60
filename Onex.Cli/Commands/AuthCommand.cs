using System.CommandLine;

namespace Onex.Cli.Commands;

/// <summary><c>onex auth</c>: access control files (tokens here; keys beside it).</summary>
internal static class AuthCommand
{
    public static Command Build(CliContext context) =>
        new("auth", "Access control: tokens for a registry's auth file, and CurveZMQ keys for one that encrypts.") { AuthTokenCommand.Build(context), Auth.AuthKeygenCommand.Build(context) };
}
