using System.CommandLine;
using System.Text.Json;
using Onex.Cli.Hold;
using Onex.Cli.Output;
using Onex.Cli.Usage;
using Onex.Protocol;

namespace Onex.Cli.Commands;

/// <summary><c>onex tools list | show | validate | register</c>.</summary>
internal static class ToolsCommand
{
    public static Command Build(CliContext context) => new("tools", "Tool contracts.")
    {
        BuildList(context),
        BuildShow(context),
        BuildValidate(context),
        BuildRegister(context),
    };

    public static TextTable Table(IEnumerable<ToolContractRecord> tools)
    {
        var table = new TextTable("TOOL", "VERSION", "NODE", "HEALTH", "FINGERPRINT", "DESCRIPTION");
        foreach (var tool in tools.OrderBy(t => t.Name, StringComparer.Ordinal).ThenBy(t => t.Version, ToolVersions.Comparer))
            table.Add(tool.Name, tool.Version, tool.NodeId, tool.Health, Short(tool.Fingerprint), tool.Description);
        return table;
    }

    private static Command BuildList(CliContext context)
    {
        var json = DescribeCommand.JsonOption("the tool contracts");
        var command = new Command("list", "List the registered tool contracts.") { json };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var tools = await ToolsAsync(context, parse, null, cancellationToken).ConfigureAwait(false);
            if (parse.GetValue(json))
                await context.Output.WriteLineAsync(CliJson.Serialize(tools)).ConfigureAwait(false);
            else if (tools.Count == 0)
                await context.Output.WriteLineAsync("No tools registered.").ConfigureAwait(false);
            else
                Table(tools).WriteTo(context.Output);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command BuildShow(CliContext context)
    {
        var name = new Argument<string>("NAME") { Description = "The tool's name." };
        var version = new Option<string?>("--version") { Description = "The contract version (default: the highest registered).", HelpName = "VERSION" };
        var json = DescribeCommand.JsonOption("the contract");
        var command = new Command("show", "Show one tool contract with its schemas.") { name, version, json };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var toolName = parse.GetRequiredValue(name);
            var wanted = parse.GetValue(version);
            var tools = await ToolsAsync(context, parse, toolName, cancellationToken).ConfigureAwait(false);
            var tool = Pick(tools, toolName, wanted);
            if (tool is null)
            {
                var known = tools.Where(t => t.Name == toolName).Select(t => t.Version).ToArray();
                await context.Error.WriteLineAsync(known.Length == 0
                    ? $"onex: no tool named '{toolName}' is registered (see `onex tools list`)."
                    : $"onex: tool '{toolName}' has no version {wanted}; registered: {string.Join(", ", known)}.").ConfigureAwait(false);
                return ExitCodes.Failed;
            }
            if (parse.GetValue(json))
            {
                await context.Output.WriteLineAsync(CliJson.Serialize(tool)).ConfigureAwait(false);
                return ExitCodes.Ok;
            }
            var output = context.Output;
            output.WriteLine($"{tool.Name} {tool.Version}");
            if (tool.Description.Length > 0) output.WriteLine(tool.Description);
            output.WriteLine($"Node:        {tool.NodeId} ({tool.Health})");
            output.WriteLine($"Fingerprint: {tool.Fingerprint}");
            output.WriteLine($"Registered:  {DescribeCommand.Time(tool.RegisteredAt)}");
            output.WriteLine("Error codes: " + (tool.ErrorCodes.Count == 0 ? "none" : ""));
            foreach (var code in tool.ErrorCodes) output.WriteLine($"  {code.Code}  {code.Description}");
            output.WriteLine("Input schema:");
            output.WriteLine(PrettyJson(tool.InputSchema));
            output.WriteLine("Output schema:");
            output.WriteLine(PrettyJson(tool.OutputSchema));
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command BuildValidate(CliContext context)
    {
        var name = new Argument<string>("NAME") { Description = "The tool's name." };
        var file = new Argument<FileInfo>("FILE") { Description = "A JSON file holding the payload." };
        var outputSchema = new Option<bool>("--output") { Description = "Validate against the output schema (default: the input schema)." };
        var version = new Option<string?>("--version") { Description = "The contract version (default: the highest registered).", HelpName = "VERSION" };
        var json = DescribeCommand.JsonOption("the ValidationResult");
        var command = new Command("validate", "Validate a JSON payload against a tool's input or output schema; exit code 1 when invalid.")
        {
            name, file, outputSchema, version, json,
        };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var path = parse.GetRequiredValue(file);
            string payload;
            try
            {
                payload = await File.ReadAllTextAsync(path.FullName, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await context.Error.WriteLineAsync($"onex: cannot read {path}: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Usage;
            }
            try
            {
                using var _ = JsonDocument.Parse(payload);
            }
            catch (JsonException ex)
            {
                await context.Error.WriteLineAsync($"onex: {path} is not valid JSON: {ex.Message}").ConfigureAwait(false);
                return ExitCodes.Failed;
            }

            var direction = parse.GetValue(outputSchema) ? PayloadDirections.Output : PayloadDirections.Input;
            await using var client = await context.ConnectAsync(parse, cancellationToken).ConfigureAwait(false);
            var result = await client.ValidatePayloadAsync(parse.GetRequiredValue(name), payload, direction, parse.GetValue(version), cancellationToken)
                .ConfigureAwait(false);
            if (parse.GetValue(json))
            {
                await context.Output.WriteLineAsync(CliJson.Serialize(result)).ConfigureAwait(false);
            }
            else
            {
                var against = $"{result.ToolName} {result.Version} {direction} schema ({Short(result.Fingerprint)})";
                await context.Output.WriteLineAsync(result.Valid
                    ? $"valid: {path.Name} satisfies {against}"
                    : $"invalid: {path.Name} does not satisfy {against}: {result.Errors.Count} error(s)").ConfigureAwait(false);
                foreach (var issue in result.Errors)
                    await context.Output.WriteLineAsync($"  {(issue.Path.Length == 0 ? "#" : issue.Path)}: {issue.Kind}: {issue.Message}").ConfigureAwait(false);
            }
            return result.Valid ? ExitCodes.Ok : ExitCodes.Failed;
        }));
        return command;
    }

    private static Command BuildRegister(CliContext context)
    {
        var file = new Argument<FileInfo>("FILE") { Description = "A tool contract file (JSON), e.g. samples/tools/greet.tool.json." };
        var untilPid = CliValues.OptionalNumber("--until-pid", "PID", "Hold the registration until process PID exits (or a signal); stdin is not read.", 1);
        var untilSignal = new Option<bool>("--until-signal") { Description = "Hold the registration until SIGTERM or Ctrl-C only; stdin is not read." };
        var json = DescribeCommand.JsonOption("the ToolContractRecord (one line)");
        var command = new Command("register",
            "Register the tool contract in FILE, owned by this command's node, and hold it as ports lease holds leases (a tool " +
            "belongs to a live node): until Ctrl-C, SIGTERM, end of stdin when it is not a terminal, --until-pid or --until-signal; " +
            "the registration goes away with the node when this command exits.")
        {
            file, json, untilPid, untilSignal,
        };
        command.SetAction(OnexCli.Guard(context, async (parse, cancellationToken) =>
        {
            var path = parse.GetRequiredValue(file);
            string text;
            try
            {
                text = await File.ReadAllTextAsync(path.FullName, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                throw new UsageException($"cannot read {path}: {ex.Message}");
            }
            var contract = ToolContractFile.Parse(text, path.ToString());
            var hold = HoldCondition.From(context, parse.GetValue(untilPid), parse.GetValue(untilSignal));
            await using var client = await context.ConnectAsync(parse, cancellationToken, announce: true, nodeName: "onex tools register")
                .ConfigureAwait(false);
            var record = await client.RegisterToolAsync(contract.Name, contract.Version, contract.InputSchema, contract.OutputSchema,
                contract.Description, contract.ErrorCodes, cancellationToken).ConfigureAwait(false);
            await context.Output.WriteLineAsync(parse.GetValue(json)
                ? CliJson.Serialize(record, indented: false)
                : $"registered {record.Name} {record.Version} ({Short(record.Fingerprint)}) as node {record.NodeId}").ConfigureAwait(false);
            await context.Output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            await context.Error.WriteLineAsync($"onex: holding tool {record.Name} {record.Version} until {hold.Description}.").ConfigureAwait(false);
            await hold.WaitAsync(context, cancellationToken).ConfigureAwait(false);
            await context.Error.WriteLineAsync("onex: released.").ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<IReadOnlyList<ToolContractRecord>> ToolsAsync(
        CliContext context, ParseResult parse, string? namePrefix, CancellationToken cancellationToken)
    {
        await using var client = await context.ConnectAsync(parse, cancellationToken).ConfigureAwait(false);
        var response = await client.DescribeAsync(
            new IntrospectionRequest { Include = [IntrospectionSections.Tools], NamePrefix = namePrefix }, cancellationToken).ConfigureAwait(false);
        return response.Tools ?? [];
    }

    private static ToolContractRecord? Pick(IEnumerable<ToolContractRecord> tools, string name, string? version)
    {
        var candidates = tools.Where(t => t.Name == name);
        return version is null
            ? candidates.OrderByDescending(t => t.Version, ToolVersions.Comparer).FirstOrDefault()
            : candidates.FirstOrDefault(t => t.Version == version);
    }

    private static string Short(string fingerprint) => fingerprint.Length > 19 ? fingerprint[..19] : fingerprint;

    private static string PrettyJson(string json)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            return JsonSerializer.Serialize(document.RootElement, CliJson.Indented);
        }
        catch (JsonException)
        {
            return json; // the registry validated it; show it as stored if it still does not parse here
        }
    }
}

/// <summary>Orders semantic versions (<c>1.10.0</c> after <c>1.9.0</c>, <c>1.0.0-rc.1</c> before <c>1.0.0</c>) by the registry's rules.</summary>
internal static class ToolVersions
{
    public static IComparer<string> Comparer { get; } = Comparer<string>.Create(Compare);

    /// <summary>Semantic-version precedence; text that is not a semantic version sorts before any that is, then ordinally.</summary>
    public static int Compare(string? left, string? right)
    {
        var leftParsed = Onex.RegistryNode.Tools.ToolVersions.TryParse(left, out var l);
        var rightParsed = Onex.RegistryNode.Tools.ToolVersions.TryParse(right, out var r);
        return (leftParsed, rightParsed) switch
        {
            (true, true) => Onex.RegistryNode.Tools.ToolVersions.Precedence.Compare(l, r),
            (true, false) => 1,
            (false, true) => -1,
            _ => string.CompareOrdinal(left, right),
        };
    }
}
