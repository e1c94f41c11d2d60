using NetMQ;
using Onex.RegistryNode.Hosting;

// The node's command line and generic host live in Onex.RegistryNode (RegistryNodeCommandLine), shared with
// `onex registry serve`; this program only runs them.
var exitCode = await RegistryNodeHost.RunAsync(args, CancellationToken.None);
// Let ZeroMQ deliver what is still queued (the stopping heartbeat) before the process ends.
NetMQConfig.Cleanup(block: true);
return exitCode;
