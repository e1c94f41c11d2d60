namespace Onex.Testing.Nats;

// Public here, in the test kit; the CLI links NatsServerProcess.cs alone, where the class stays internal.
public sealed partial class NatsServerProcess;
