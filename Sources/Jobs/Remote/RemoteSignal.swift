/// A signal ``RemoteExecutor/terminate(signal:)`` sends to the remote script's process group.
public enum RemoteSignal: String, Sendable, Hashable {
    case term = "TERM"
    case kill = "KILL"
}
