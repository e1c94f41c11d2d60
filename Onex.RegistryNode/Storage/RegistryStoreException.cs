namespace Onex.RegistryNode.Storage;

/// <summary>
/// The registry's store cannot be opened: a damaged file, a file of another program, a newer format than this build
/// knows, a data directory in use by another registry, or one that cannot be created. The message names the file
/// and what to do; nothing on disk was changed.
/// </summary>
public sealed class RegistryStoreException(string message, Exception? innerException = null) : Exception(message, innerException);

/// <summary>A commit did not reach the store (full disk, I/O error); nothing of it was applied.</summary>
internal sealed class StoreWriteException(string message, Exception? innerException = null) : Exception(message, innerException);
