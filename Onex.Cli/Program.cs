using NetMQ;
using Onex.Cli;

var exitCode = await OnexCli.RunAsync(args, Console.Out, Console.Error, new Onex.Cli.Hold.LazyConsoleInput(), handleSignals: true);
// ZeroMQ sends from background I/O threads, so a process that just ends drops what a closed socket still queues
// (`onex bus publish` lost all 200 events it had reported published on a loaded machine). Cleanup lets each socket's
// linger run out first. It waits for every socket to close, so it is bounded: a socket left open must not hang the exit.
var cleanup = Task.Run(() => NetMQConfig.Cleanup(block: true));
await Task.WhenAny(cleanup, Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
return exitCode;
