using System.CommandLine;
using Onex.Cli.Output;
using Onex.Transports.Security;

namespace Onex.Cli.Commands.Auth;

/// <summary>
/// <c>onex auth keygen --file FILE</c>: writes a new CurveZMQ key pair for a registry node (<c>--curve-key-file</c>) or a
/// bus host to FILE (mode 0600) and its public half to FILE.pub, and prints the public key, which clients set as
/// <c>ONEX_REGISTRY_SERVER_KEY</c>. Nothing here talks to a registry.
/// </summary>
internal static class AuthKeygenCommand
{
    public static Command Build(CliContext context)
    {
        var file = new Option<string>("--file")
        {
            Description = "Where to write the key pair (mode 0600); the public key also goes to FILE.pub. An existing file is kept unless --force.",
            HelpName = "FILE",
            Required = true,
        };
        var force = new Option<bool>("--force") { Description = "Overwrite FILE and FILE.pub if they exist." };
        var json = new Option<bool>("--json") { Description = "Print {\"publicKey\":...,\"file\":...,\"publicFile\":...} instead of text." };
        var command = new Command("keygen",
            "Write a new CURVE key pair (encryption and server identity on TCP; docs/ENCRYPTION.md) and print its public key.")
        {
            file, force, json,
        };
        command.SetAction(OnexCli.Guard(context, async (parse, _) =>
        {
            var path = parse.GetValue(file)!;
            var publicPath = path + ".pub";
            var overwrite = parse.GetValue(force);
            var keys = CurveKeyPair.Generate();
            try
            {
                if (!overwrite && File.Exists(publicPath))
                    throw new IOException($"{publicPath} exists; keys are not overwritten (remove it first, or pass --force).");
                CurveKeyFile.Write(path, keys, overwrite);
                CurveKeyFile.WritePublic(publicPath, keys, overwrite);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return await context.FailAsync(parse, ExitCodes.Failed, "KEYGEN", $"onex: cannot write the key pair: {ex.Message}").ConfigureAwait(false);
            }
            if (parse.GetValue(json))
            {
                await context.Output.WriteLineAsync(CliJson.Serialize(new { publicKey = keys.PublicKey, file = path, publicFile = publicPath }, indented: false))
                    .ConfigureAwait(false);
            }
            else
            {
                await context.Output.WriteLineAsync(keys.PublicKey).ConfigureAwait(false);
                await context.Error.WriteLineAsync(
                    $"onex: wrote the secret key pair to {path} (mode 0600) and the public key to {publicPath}; serve with " +
                    $"--curve-key-file {path} and give clients ONEX_REGISTRY_SERVER_KEY={keys.PublicKey}").ConfigureAwait(false);
            }
            return ExitCodes.Ok;
        }));
        return command;
    }
}
