using Onex.Cli;

return await OnexCli.RunAsync(args, Console.Out, Console.Error, Console.In, handleSignals: true);
