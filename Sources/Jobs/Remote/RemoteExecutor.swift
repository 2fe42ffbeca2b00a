import Foundation
import Store
import Synchronization

/// Runs shell scripts on a remote host over SSH (libssh2), one run at a time.
///
/// Each run opens its own connection on a dedicated thread (libssh2 blocks; Swift's cooperative
/// pool must not), verifies the host key against ``KnownHosts`` before authenticating, uploads
/// the script and its environment over SFTP into a fresh `mktemp -d` directory and starts it with
/// a fixed launcher command, so no user value is ever part of a command line.
///
/// ```swift
/// let executor = RemoteExecutor(target: try SSHTarget("ssh://deploy@build.example.com"),
///                               privateKey: pem, knownHosts: environmentHosts)
/// let exit = try await executor.run(script: "make test", environment: ["CI": "1"]) { output in
///     await logLines.append(output)
/// }
/// ```
public final class RemoteExecutor: Sendable {
    /// Timeouts of a run.
    public struct Options: Sendable, Hashable {
        /// How long the TCP connection may take before the host counts as unreachable.
        public var connectTimeout: Duration
        /// The limit for each protocol step (handshake, authentication, upload, helper commands);
        /// not for the script, whose time limit is the caller's (see ``RemoteExecutor/terminate(signal:)``).
        public var operationTimeout: Duration
        /// After task cancellation, how long the script has between TERM and KILL.
        public var cancellationGracePeriod: Duration

        public init(
            connectTimeout: Duration = .seconds(15),
            operationTimeout: Duration = .seconds(60),
            cancellationGracePeriod: Duration = .seconds(10)
        ) {
            self.connectTimeout = connectTimeout
            self.operationTimeout = operationTimeout
            self.cancellationGracePeriod = cancellationGracePeriod
        }
    }

    public let target: SSHTarget
    private let privateKey: [UInt8]
    private let knownHosts: KnownHosts
    private let options: Options
    private let current = Mutex<RemoteRunControl?>(nil)

    /// - Parameters:
    ///   - privateKey: an OpenSSH (`BEGIN OPENSSH PRIVATE KEY`) or PEM private key, unencrypted. It
    ///     stays in memory and is handed to libssh2 directly, never written to disk.
    ///   - knownHosts: the pinned host keys; the environment's own (targets have no built-in keys).
    public init(target: SSHTarget, privateKey: String, knownHosts: KnownHosts, options: Options = Options()) {
        self.target = target
        self.privateKey = Array(privateKey.utf8)
        self.knownHosts = knownHosts
        self.options = options
    }

    /// Runs `script` on the target and returns how it ended.
    ///
    /// Output is passed to `output` as it arrives, stdout and stderr apart, each in order; while
    /// `output` is slow the remote side is slowed by SSH flow control. Task cancellation sends TERM
    /// to the script's process group, KILL after ``Options/cancellationGracePeriod``, and throws
    /// `CancellationError` once the script has ended and its directory is removed.
    ///
    /// - Parameters:
    ///   - script: run with `bash --noprofile --norc -eo pipefail` unless it starts with `#!`, in
    ///     which case it is executed directly.
    ///   - environment: exactly the script's environment (nothing of sshd's or the login's; pass
    ///     `PATH` if the script needs more than the shell's default). Names must be shell
    ///     identifiers; values may hold any bytes but NUL and are never evaluated.
    ///   - workingDirectory: the script's working directory, created if missing (relative to the
    ///     remote user's home); a fresh directory inside the run's temporary directory when nil.
    ///   - homeVariable: a name the script gets the remote login's home directory in (`HOME`,
    ///     say) unless `environment` sets it; none when nil.
    ///   - workingDirectoryVariable: a name the script gets its absolute working directory in; none
    ///     when nil.
    /// - Throws: ``RemoteExecutionError`` (`.unreachable` is worth retrying), or `CancellationError`.
    public func run(
        script: String,
        environment: [String: String] = [:],
        workingDirectory: String? = nil,
        homeVariable: String? = nil,
        workingDirectoryVariable: String? = nil,
        output: @escaping @Sendable (RemoteOutput) async -> Void
    ) async throws -> RemoteExit {
        try Task.checkCancellation()
        var placeVariables: [UInt8] = []
        for name in [homeVariable, workingDirectoryVariable] {
            if let name { try Self.checkName(name) }
            placeVariables += Array((name ?? "").utf8) + [0]
        }
        let request = SSHSession.Request(
            target: target, privateKey: privateKey, knownHosts: knownHosts, options: options,
            script: Array(script.utf8), environment: try Self.encode(environment),
            workspace: try Self.validated(workingDirectory), placeVariables: placeVariables)
        let control = try RemoteRunControl()
        try current.withLock { current in
            guard current == nil else {
                throw RemoteExecutionError(.alreadyRunning, "a run on \(target) is already in progress")
            }
            current = control
        }
        defer { current.withLock { $0 = nil } }

        let thread = Thread {
            SSHSession(request: request, control: control).run()
        }
        thread.name = "ssh \(target.host)"
        thread.start()

        return try await withTaskCancellationHandler {
            while true {
                switch await control.next() {
                case .output(let chunk):
                    await output(chunk)
                case .finished(let result):
                    let exit = try result.get()
                    try Task.checkCancellation()
                    return exit
                }
            }
        } onCancel: {
            control.cancel()
        }
    }

    /// Sends `signal` to the running script's process group (a second channel on the run's
    /// connection runs a fixed `kill` command). Before the script has started, the run stops there
    /// and throws ``RemoteExecutionError/Code/terminated``. Does nothing when no run is in progress.
    ///
    /// For a time limit: `.term`, then `.kill` after a grace period if the run has not returned.
    public func terminate(signal: RemoteSignal) {
        current.withLock { $0 }?.request(signal)
    }

    private static func encode(_ environment: [String: String]) throws -> [UInt8] {
        var encoded: [UInt8] = []
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) {
            try checkName(name)
            guard !value.utf8.contains(0) else {
                throw RemoteExecutionError(.invalidRequest, "the value of environment variable \(name) contains a NUL byte")
            }
            encoded += Array(name.utf8) + [UInt8(ascii: "=")] + Array(value.utf8) + [0]
        }
        return encoded
    }

    private static func checkName(_ name: String) throws {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first),
            name.utf8.allSatisfy({ isIdentifierByte($0) })
        else {
            throw RemoteExecutionError(.invalidRequest, "environment name '\(name)' is not a shell identifier ([A-Za-z_][A-Za-z0-9_]*)")
        }
    }

    private static func isIdentifierByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    private static func validated(_ workingDirectory: String?) throws -> String? {
        guard let workingDirectory else { return nil }
        guard !workingDirectory.isEmpty, !workingDirectory.utf8.contains(0) else {
            throw RemoteExecutionError(.invalidRequest, "the working directory must be a non-empty path without NUL bytes")
        }
        return workingDirectory
    }
}
