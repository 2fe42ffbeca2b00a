/// Why a remote run failed. The message names hosts, fingerprints and libssh2's own error text,
/// never environment values, the script or the private key.
public struct RemoteExecutionError: Error, Hashable, CustomStringConvertible {
    /// What kind of failure, so a caller can decide whether to retry.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Base: String, Hashable, Sendable {
            case unreachable, hostKeyRejected, authenticationFailed, protocolError, invalidRequest,
                terminated, alreadyRunning
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The host could not be reached (refused, timed out, no route, name not resolved): retry later.
        public static let unreachable = Code(.unreachable)
        /// The host's key is not the pinned one, not pinned at all, or revoked. Never retried.
        public static let hostKeyRejected = Code(.hostKeyRejected)
        /// The server refused the private key (or the key could not be read).
        public static let authenticationFailed = Code(.authenticationFailed)
        /// The SSH session failed after connecting: handshake, channel, SFTP or a remote helper command.
        public static let protocolError = Code(.protocolError)
        /// The request itself is invalid (e.g. an environment name that is not a shell identifier).
        public static let invalidRequest = Code(.invalidRequest)
        /// ``RemoteExecutor/terminate(signal:)`` was called before the script had started.
        public static let terminated = Code(.terminated)
        /// ``RemoteExecutor/run(script:environment:workingDirectory:output:)`` was called while a run was in progress.
        public static let alreadyRunning = Code(.alreadyRunning)

        public var description: String { base.rawValue }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
