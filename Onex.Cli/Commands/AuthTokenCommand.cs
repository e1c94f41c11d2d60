using System.CommandLine;
using Onex.RegistryNode.Auth;

namespace Onex.Cli.Commands;

/// <summary><c>onex auth add-token --file FILE --tenant T --role R --name N</c>: a new token, its hash stored, the token printed once.</summary>
internal static class AuthTokenCommand
{
    public static Command Build(CliContext context)
    {
        var file = new Option<string>("--file") { Description = "The registry's auth file (created, owner-only, when missing).", Required = true, HelpName = "FILE" };
        var tenant = new Option<string>("--tenant") { Description = "The tenant the token belongs to (added when new).", Required = true, HelpName = "TENANT" };
        var role = new Option<string>("--role") { Description = "reader, node or admin.", Required = true, HelpName = "ROLE" };
        role.AcceptOnlyFromAmong([.. AuthRoles.All]);
        var name = new Option<string>("--name") { Description = "A name for the token, unique in its tenant (shown in logs; the token never is).", Required = true, HelpName = "NAME" };
        var command = new Command("add-token",
            "Generate a token (256 random bits), store its SHA-256 hash in the auth file, and print the token once on stdout. " +
            "A running registry picks the change up by itself (or on SIGHUP).")
        {
            file, tenant, role, name,
        };
        command.SetAction(OnexCli.Guard(context, async (parse, _) =>
        {
            string token;
            try
            {
                token = AuthFileEditor.AddToken(parse.GetValue(file)!, parse.GetValue(tenant)!, parse.GetValue(role)!, parse.GetValue(name)!);
            }
            catch (AuthFileException ex)
            {
                await context.Error.WriteLineAsync($"onex: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            // stdout carries the token alone, so `TOKEN=$(onex auth add-token ...)` works; the note goes to stderr.
            await context.Output.WriteLineAsync(token).ConfigureAwait(false);
            await context.Error.WriteLineAsync(
                $"onex: token '{parse.GetValue(name)}' ({parse.GetValue(role)}) added to tenant '{parse.GetValue(tenant)}'; it is shown only now, store it safely.")
                .ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        return command;
    }
}
