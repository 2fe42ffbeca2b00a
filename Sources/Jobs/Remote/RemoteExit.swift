/// How a remote script ended.
public enum RemoteExit: Sendable, Hashable {
    /// It exited with this status.
    case exited(Int32)
    /// A signal ended it; the name without `SIG`, e.g. `TERM`.
    case signaled(String)

    /// The exit status a shell would report: the code, or 128 + the signal's number (Linux
    /// numbering; 128 alone for a signal name this table lacks).
    public var exitStatus: Int {
        switch self {
        case .exited(let code): Int(code)
        case .signaled(let name): 128 + (Self.signalNumbers[name] ?? 0)
        }
    }

    private static let signalNumbers = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7, "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11,
        "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15,
    ]
}
