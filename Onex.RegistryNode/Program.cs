using NetMQ;
using Onex.RegistryNode.Hosting;

var exitCode = await RegistryNodeHost.RunAsync(args, CancellationToken.None);
// Let ZeroMQ deliver what is still queued (the stopping heartbeat) before the process ends.
NetMQConfig.Cleanup(block: true);
return exitCode;
