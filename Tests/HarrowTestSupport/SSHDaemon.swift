import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A real OpenSSH server on loopback for tests, with its own host key, on a free port.
///
/// Start one per test (or per suite): each has its own directory, host key, `authorized_keys`
/// and port. The daemon runs until ``stop()`` or until the object is released.
public final class SSHDaemon: Sendable {
    /// The TCP port sshd listens on, on 127.0.0.1.
    public let port: Int
    /// The account to log in as: the current user (root on the CI machine).
    public let user: String
    /// The server's host key as `type base64`, e.g. `ssh-ed25519 AAAA...`.
    public let hostKeyLine: String
    /// The daemon's temporary directory: config, host key, authorized_keys and `sshd.log`.
    public let directory: URL

    /// A line for a known_hosts file that pins this daemon's host key on its port.
    public var knownHostsLine: String {
        "[127.0.0.1]:\(port) \(hostKeyLine)"
    }

    /// The daemon's log (`sshd -e` output at `LogLevel VERBOSE`), for diagnosing a failed test.
    public var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("sshd.log"), encoding: .utf8)) ?? ""
    }

    // The pid is cleared by the first stop(), which makes stop() idempotent and safe from any thread.
    private let process: Mutex<pid_t?>
    private let removesDirectory: Bool

    private init(
        port: Int, user: String, hostKeyLine: String, directory: URL, pid: pid_t, removesDirectory: Bool
    ) {
        self.port = port
        self.user = user
        self.hostKeyLine = hostKeyLine
        self.directory = directory
        self.process = Mutex(pid)
        self.removesDirectory = removesDirectory
    }

    deinit {
        stop()
    }

    /// Starts sshd that accepts the given `authorized_keys` lines for ``user``.
    ///
    /// - Parameters:
    ///   - authorizedKeys: OpenSSH public key lines (`ssh-ed25519 AAAA... comment`).
    ///   - directory: where to keep the daemon's files; a fresh temporary directory (removed on
    ///     stop) when nil.
    public static func start(
        authorizedKeys: [String], directory: URL? = nil
    ) async throws
        -> SSHDaemon
    {
        let fileManager = FileManager.default
        let workDirectory =
            directory
            ?? fileManager.temporaryDirectory.appendingPathComponent(
                "sshd-\(UUID().uuidString)", isDirectory: true)
        try fileManager.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        let hostKey = workDirectory.appendingPathComponent("host_ed25519")
        let authorizedKeysFile = workDirectory.appendingPathComponent("authorized_keys")
        let configFile = workDirectory.appendingPathComponent("sshd_config")
        let logFile = workDirectory.appendingPathComponent("sshd.log")

        if !fileManager.fileExists(atPath: hostKey.path) {
            try runToCompletion(
                "/usr/bin/ssh-keygen",
                ["-q", "-t", "ed25519", "-N", "", "-C", "sshd-fixture", "-f", hostKey.path])
        }
        let publicKeyFields = try String(
            contentsOf: hostKey.appendingPathExtension("pub"), encoding: .utf8
        )
        .split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard publicKeyFields.count >= 2 else {
            throw SSHDaemonError("ssh-keygen wrote an unreadable public key in \(workDirectory.path)")
        }
        let hostKeyLine = "\(publicKeyFields[0]) \(publicKeyFields[1])"
        try (authorizedKeys.joined(separator: "\n") + "\n").write(
            to: authorizedKeysFile, atomically: true, encoding: .utf8)
        // sshd refuses a host key that others can read.
        chmod(hostKey.path, 0o600)

        let isRoot = geteuid() == 0
        if isRoot {
            // The privilege-separation chroot directory; Debian creates it only when the service starts.
            try? fileManager.createDirectory(
                atPath: "/run/sshd", withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o755])
        }

        let user = currentUserName()
        var lastFailure = ""
        // A free port found by binding port 0 can be taken by someone else before sshd binds it.
        for _ in 0..<5 {
            let port = try freeLoopbackPort()
            let config = """
                Port \(port)
                ListenAddress 127.0.0.1
                HostKey \(hostKey.path)
                AuthorizedKeysFile \(authorizedKeysFile.path)
                StrictModes no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PubkeyAuthentication yes
                PermitRootLogin prohibit-password
                UsePAM no
                PidFile \(workDirectory.appendingPathComponent("sshd.pid").path)
                LogLevel VERBOSE
                Subsystem sftp internal-sftp
                MaxStartups 100:30:200
                MaxSessions 50

                """
            try config.write(to: configFile, atomically: true, encoding: .utf8)
            try? fileManager.removeItem(at: logFile)
            let pid = try spawn(
                "/usr/sbin/sshd", ["-D", "-e", "-f", configFile.path], stderrTo: logFile.path)
            let daemon = SSHDaemon(
                port: port, user: user, hostKeyLine: hostKeyLine, directory: workDirectory, pid: pid,
                removesDirectory: directory == nil)
            switch await daemon.waitUntilListening(timeout: .seconds(30)) {
            case .listening:
                return daemon
            case .exited:
                lastFailure = daemon.logTail()
                daemon.stop(removingDirectory: false)
                if lastFailure.contains("Address already in use") || lastFailure.contains("Cannot bind") {
                    continue
                }
                throw SSHDaemonError("sshd exited at start; log:\n\(lastFailure)")
            case .timedOut:
                let tail = daemon.logTail()
                daemon.stop()
                throw SSHDaemonError(
                    "sshd did not accept connections on 127.0.0.1:\(port) within 30 s; log:\n\(tail)")
            }
        }
        if directory == nil { try? fileManager.removeItem(at: workDirectory) }
        throw SSHDaemonError(
            "sshd could not bind a free port after 5 attempts; last log:\n\(lastFailure)")
    }

    /// Sends SIGTERM to sshd and waits for it to exit. Idempotent.
    /// Lets `publicKey` log in (sshd reads `authorized_keys` at each login).
    public func authorize(_ publicKey: String) throws {
        let handle = try FileHandle(forWritingTo: directory.appendingPathComponent("authorized_keys"))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("\n\(publicKey)\n".utf8))
    }

    public func stop() {
        stop(removingDirectory: removesDirectory)
    }

    private func stop(removingDirectory: Bool) {
        guard
            let pid = process.withLock({ pid in
                defer { pid = nil }
                return pid
            })
        else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        if removingDirectory {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    private enum StartOutcome { case listening, exited, timedOut }

    private func waitUntilListening(timeout: Duration) async -> StartOutcome {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if Self.acceptsConnection(port: port) { return .listening }
            let exited = process.withLock { pid -> Bool in
                guard let running = pid else { return true }
                var status: Int32 = 0
                if waitpid(running, &status, WNOHANG) == running {
                    pid = nil
                    return true
                }
                return false
            }
            if exited { return .exited }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return .timedOut
    }

    private func logTail(lines: Int = 30) -> String {
        log.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(
            separator: "\n")
    }

    private static func acceptsConnection(port: Int) -> Bool {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { return false }
        defer { close(socketFD) }
        var address = loopbackAddress(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return result == 0
    }

    /// A loopback port nothing listens on (just now): an unreachable host for tests.
    public static func unusedPort() throws -> Int {
        try freeLoopbackPort()
    }

    private static func freeLoopbackPort() throws -> Int {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { throw SSHDaemonError("socket() failed: errno \(errno)") }
        defer { close(socketFD) }
        var address = loopbackAddress(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw SSHDaemonError("bind(127.0.0.1:0) failed: errno \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) }
        }
        guard named == 0 else { throw SSHDaemonError("getsockname failed: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return address
    }

    private static func currentUserName() -> String {
        if let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name {
            return String(cString: name)
        }
        return ProcessInfo.processInfo.environment["USER"] ?? "root"
    }

    /// Starts `path` with stdin from /dev/null and stdout and stderr appended to `logPath`.
    private static func spawn(
        _ path: String, _ arguments: [String], stderrTo logPath: String
    ) throws
        -> pid_t
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The test process may ignore or block signals (SIGPIPE in particular); sshd must not inherit that.
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
        guard result == 0 else {
            throw SSHDaemonError("could not start \(path): \(String(cString: strerror(result)))")
        }
        return pid
    }

    private static func runToCompletion(_ path: String, _ arguments: [String]) throws {
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sshd-fixture-\(UUID().uuidString).log"
        ).path
        defer { unlink(logPath) }
        let pid = try spawn(path, arguments, stderrTo: logPath)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        // WIFEXITED && WEXITSTATUS == 0, spelled out because the macros are not imported.
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw SSHDaemonError(
                "\(path) \(arguments.joined(separator: " ")) failed (status \(status)): \(output)")
        }
    }
}

/// Why ``SSHDaemon`` could not start.
public struct SSHDaemonError: Error, CustomStringConvertible {
    public let description: String

    init(_ description: String) {
        self.description = description
    }
}
