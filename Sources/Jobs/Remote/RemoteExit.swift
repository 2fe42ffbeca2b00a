/// How a remote script ended.
public enum RemoteExit: Sendable, Hashable {
    /// It exited with this status.
    case exited(Int32)
    /// A signal ended it; the name without `SIG`, e.g. `TERM`.
    case signaled(String)
}
