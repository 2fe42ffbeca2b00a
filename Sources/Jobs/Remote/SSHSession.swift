import CSSH2
import Foundation
import Store

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One SSH connection and the run it carries, confined to the thread that calls ``run()``.
///
/// libssh2 is used in non-blocking mode: every call that would block returns EAGAIN and we
/// `poll()` the socket together with the run's wakeup pipe. That is what lets a single thread read
/// stdout and stderr as they come, notice a termination request at once (and open a second
/// channel for the signal on the same session), and bound every wait with a deadline.
final class SSHSession {
    struct Request: Sendable {
        var target: SSHTarget
        var privateKey: [UInt8]
        var knownHosts: KnownHosts
        var options: RemoteExecutor.Options
        var script: [UInt8]
        var environment: [UInt8]
        var workspace: String?
        /// Names the launcher sets to the working directory and to the login's home (may be empty).
        var placeVariables: [UInt8]
    }

    private let request: Request
    private let control: RemoteRunControl
    private var socketFD: Int32 = -1
    private var session: OpaquePointer?
    private var readBuffer = [UInt8](repeating: 0, count: 32 * 1024)

    private static let libraryReady: Bool = libssh2_init(0) == 0

    init(request: Request, control: RemoteRunControl) {
        self.request = request
        self.control = control
    }

    deinit {
        if let session {
            libssh2_session_free(session)
        }
        if socketFD >= 0 {
            close(socketFD)
        }
    }

    /// Connects, runs the script and cleans up; the outcome goes to the run control.
    func run() {
        let outcome: Result<RemoteExit, any Error>
        do {
            outcome = .success(try connectAndRun())
        } catch {
            outcome = .failure(error)
        }
        disconnect()
        control.finish(outcome)
    }

    private var target: SSHTarget { request.target }

    private func connectAndRun() throws -> RemoteExit {
        guard Self.libraryReady else { throw RemoteExecutionError(.protocolError, "libssh2 could not be initialised") }
        try connectSocket()
        try startSession()
        try verifyHostKey()
        try authenticate()

        let directory = try makeRemoteDirectory()
        do {
            try upload(into: directory)
            let exit = try runScript(directory: directory)
            removeRemoteDirectory(directory)
            return exit
        } catch {
            removeRemoteDirectory(directory)
            throw error
        }
    }

    // MARK: connection

    private func connectSocket() throws {
        let deadline = ContinuousClock.now + request.options.connectTimeout
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(target.host, String(target.port), &hints, &list)
        guard status == 0, let first = list else {
            throw RemoteExecutionError(
                .unreachable, "cannot resolve \(target.host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }

        var lastError = "no address"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            candidate = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard fd >= 0 else {
                lastError = String(cString: strerror(errno))
                continue
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, socklen_t(MemoryLayout<Int32>.size))
            if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                socketFD = fd
                return
            }
            guard errno == EINPROGRESS else {
                lastError = String(cString: strerror(errno))
                close(fd)
                continue
            }
            do {
                let ready = try waitFor(fd: fd, events: Int16(POLLOUT), deadline: deadline, abortable: true)
                if !ready {
                    lastError = "timed out after \(request.options.connectTimeout)"
                    close(fd)
                    continue
                }
            } catch {
                close(fd)
                throw error
            }
            var socketError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &length)
            if socketError == 0 {
                socketFD = fd
                return
            }
            lastError = String(cString: strerror(socketError))
            close(fd)
        }
        throw RemoteExecutionError(.unreachable, "cannot connect to \(target.host) port \(target.port): \(lastError)")
    }

    private func startSession() throws {
        guard let session = libssh2_session_init_ex(nil, nil, nil, nil) else {
            throw RemoteExecutionError(.protocolError, "libssh2 could not create a session")
        }
        self.session = session
        libssh2_session_set_blocking(session, 0)
        // Ask for a host key type that known_hosts pins for this host, as OpenSSH does; otherwise
        // the server's first choice may be a type we hold no key for and verification would fail.
        let algorithms = request.knownHosts.keyTypes(host: target.host, port: target.port)
            .flatMap { type in type == "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type] }
        if !algorithms.isEmpty {
            _ = libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, algorithms.joined(separator: ","))
        }
        let deadline = ContinuousClock.now + request.options.operationTimeout
        let status = try retry("the SSH handshake", deadline: deadline, abortable: true) {
            Int(libssh2_session_handshake(session, socketFD))
        }
        guard status == 0 else {
            throw RemoteExecutionError(
                .protocolError, "SSH handshake with \(target.host) port \(target.port) failed: \(lastErrorMessage())")
        }
    }

    private func verifyHostKey() throws {
        var length = 0
        var type: Int32 = 0
        guard let session, let pointer = libssh2_session_hostkey(session, &length, &type), length > 0 else {
            throw RemoteExecutionError(.protocolError, "\(target.host) presented no host key")
        }
        let key = UnsafeRawBufferPointer(start: pointer, count: length).map { $0 }
        let keyType = SSHWire.firstString(in: key) ?? "unknown"
        if let rejection = request.knownHosts.rejection(host: target.host, port: target.port, keyType: keyType, key: key) {
            throw RemoteExecutionError(.hostKeyRejected, rejection)
        }
    }

    private func authenticate() throws {
        guard let session else { return }
        let deadline = ContinuousClock.now + request.options.operationTimeout
        let user = target.user
        let status = try request.privateKey.withUnsafeBytes { key in
            try retry("authentication", deadline: deadline, abortable: true) {
                Int(
                    libssh2_userauth_publickey_frommemory(
                        session, user, user.utf8.count, nil, 0,
                        key.baseAddress?.assumingMemoryBound(to: CChar.self), key.count, nil))
            }
        }
        guard status == 0 else {
            let reason =
                switch Int32(status) {
                case LIBSSH2_ERROR_AUTHENTICATION_FAILED, LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
                    "the server refused the key for user \(user)"
                        + (Self.isRSAKey(request.privateKey) && Self.signsRSAWithSHA1
                            ? "; note: this libssh2 (\(Self.libraryVersion)) signs RSA keys with ssh-rsa (SHA-1), which "
                                + "OpenSSH 8.8 and later refuse by default: use an ed25519 key" : "")
                case LIBSSH2_ERROR_FILE, LIBSSH2_ERROR_METHOD_NOT_SUPPORTED:
                    "the private key could not be used (\(lastErrorMessage()))"
                default:
                    lastErrorMessage()
                }
            throw RemoteExecutionError(
                .authenticationFailed, "authentication to \(target.host) port \(target.port) failed: \(reason)")
        }
    }

    private static let libraryVersion = libssh2_version(0).map { String(cString: $0) } ?? "unknown"

    // libssh2 learned rsa-sha2-256/512 user authentication in 1.11.0.
    private static let signsRSAWithSHA1 = libssh2_version(0x010B00) == nil

    /// Whether a private key text holds an RSA key (PEM `RSA PRIVATE KEY`, or OpenSSH format naming ssh-rsa).
    static func isRSAKey(_ text: [UInt8]) -> Bool {
        let string = String(decoding: text, as: UTF8.self)
        if string.contains("BEGIN RSA PRIVATE KEY") { return true }
        let body = string.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()
        guard let decoded = Data(base64Encoded: body) else { return false }
        return decoded.range(of: Data([0, 0, 0, 7] + Array("ssh-rsa".utf8))) != nil
    }

    private func disconnect() {
        guard let session else { return }
        let deadline = ContinuousClock.now + .seconds(2)
        _ = try? retry("disconnect", deadline: deadline, abortable: false) {
            Int(libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "done", ""))
        }
    }

    // MARK: remote directory and upload

    private func makeRemoteDirectory() throws -> String {
        let result = try runHelper(RemoteLauncher.makeDirectoryCommand, abortable: true)
        let path = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.exitStatus == 0, RemoteLauncher.isSafeDirectory(path) else {
            throw RemoteExecutionError(
                .protocolError,
                "could not create a private directory on \(target.host) (`mktemp -d` exited \(result.exitStatus))")
        }
        return path
    }

    private func upload(into directory: String) throws {
        guard let session else { return }
        let deadline = ContinuousClock.now + request.options.operationTimeout
        guard
            let sftp = try retryPointer("starting SFTP", deadline: deadline, abortable: true, { libssh2_sftp_init(session) })
        else {
            throw RemoteExecutionError(.protocolError, "SFTP is not available on \(target.host): \(lastErrorMessage())")
        }
        defer { _ = try? retry("closing SFTP", deadline: deadline, abortable: false) { Int(libssh2_sftp_shutdown(sftp)) } }

        let workspace = request.workspace ?? "\(directory)/workspace"
        let files: [(name: String, contents: [UInt8], mode: Int)] = [
            ("run", Array(RemoteLauncher.program.utf8), 0o600),
            ("env", request.environment, 0o600),
            ("cwd", Array(workspace.utf8) + [0], 0o600),
            ("places", request.placeVariables, 0o600),
            ("script", request.script, 0o700),
        ]
        for file in files {
            let path = "\(directory)/\(file.name)"
            let flags = UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC | LIBSSH2_FXF_EXCL)
            guard
                let handle = try retryPointer(
                    "opening \(path)", deadline: deadline, abortable: true,
                    {
                        libssh2_sftp_open_ex(sftp, path, UInt32(path.utf8.count), flags, file.mode, LIBSSH2_SFTP_OPENFILE)
                    })
            else {
                throw RemoteExecutionError(.protocolError, "cannot create \(path) over SFTP: \(lastErrorMessage())")
            }
            var offset = 0
            var failure: String?
            while offset < file.contents.count {
                let written = try file.contents.withUnsafeBytes { bytes in
                    try retry("uploading \(path)", deadline: deadline, abortable: true) {
                        libssh2_sftp_write(
                            handle, bytes.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self),
                            bytes.count - offset)
                    }
                }
                if written < 0 {
                    failure = lastErrorMessage()
                    break
                }
                offset += written
            }
            _ = try retry("closing \(path)", deadline: deadline, abortable: false) { Int(libssh2_sftp_close_handle(handle)) }
            if let failure {
                throw RemoteExecutionError(.protocolError, "cannot write \(path) over SFTP: \(failure)")
            }
        }
    }

    private func removeRemoteDirectory(_ directory: String) {
        _ = try? runHelper(RemoteLauncher.removeCommand(directory: directory), abortable: false)
    }

    // MARK: running

    private func runScript(directory: String) throws -> RemoteExit {
        let deadline = ContinuousClock.now + request.options.operationTimeout
        let channel = try openChannel(deadline: deadline, abortable: true)
        defer { libssh2_channel_free(channel) }
        try control.markRunning()
        let command = RemoteLauncher.startCommand(directory: directory)
        let started = try retry("starting the script", deadline: deadline, abortable: false) {
            Int(libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count)))
        }
        guard started == 0 else {
            throw RemoteExecutionError(.protocolError, "the server refused to start the script: \(lastErrorMessage())")
        }
        _ = try retry("closing the script's input", deadline: deadline, abortable: false) {
            Int(libssh2_channel_send_eof(channel))
        }

        var killAt: ContinuousClock.Instant?
        while true {
            for signal in control.takePendingWork().signals {
                sendSignal(signal, directory: directory)
            }
            if control.takeCancellation() {
                sendSignal(.term, directory: directory)
                killAt = .now + request.options.cancellationGracePeriod
            }
            if let due = killAt, ContinuousClock.now >= due {
                sendSignal(.kill, directory: directory)
                killAt = nil
            }

            var progressed = false
            for stream in [Int32(0), SSH_EXTENDED_DATA_STDERR] {
                let count = readBuffer.withUnsafeMutableBytes { buffer in
                    libssh2_channel_read_ex(
                        channel, stream, buffer.baseAddress!.assumingMemoryBound(to: CChar.self), buffer.count)
                }
                if count > 0 {
                    let chunk = Array(readBuffer[0..<count])
                    control.push(stream == 0 ? .stdout(chunk) : .stderr(chunk))
                    progressed = true
                } else if count < 0 && count != Int(LIBSSH2_ERROR_EAGAIN) {
                    throw RemoteExecutionError(
                        .protocolError, "reading the script's output failed: \(lastErrorMessage())")
                }
            }
            if progressed { continue }
            if libssh2_channel_eof(channel) != 0 { break }
            _ = try waitForSession(deadline: killAt, abortable: false)
        }

        let closing = ContinuousClock.now + request.options.operationTimeout
        _ = try retry("closing the channel", deadline: closing, abortable: false) { Int(libssh2_channel_close(channel)) }
        _ = try retry("closing the channel", deadline: closing, abortable: false) {
            Int(libssh2_channel_wait_closed(channel))
        }
        return exitOf(channel)
    }

    private func exitOf(_ channel: OpaquePointer) -> RemoteExit {
        var signal: UnsafeMutablePointer<CChar>?
        var length = 0
        _ = libssh2_channel_get_exit_signal(channel, &signal, &length, nil, nil, nil, nil)
        if let signal {
            let name = String(cString: signal)
            libssh2_free(session, signal)
            if !name.isEmpty { return .signaled(name) }
        }
        return .exited(libssh2_channel_get_exit_status(channel))
    }

    private func sendSignal(_ signal: RemoteSignal, directory: String) {
        _ = try? runHelper(RemoteLauncher.signalCommand(directory: directory, signal: signal), abortable: false)
    }

    private struct HelperResult {
        var exitStatus: Int32
        var stdout: [UInt8]
    }

    /// Runs one of our fixed commands on its own channel and collects its output.
    private func runHelper(_ command: String, abortable: Bool) throws -> HelperResult {
        let deadline = ContinuousClock.now + request.options.operationTimeout
        let channel = try openChannel(deadline: deadline, abortable: abortable)
        defer { libssh2_channel_free(channel) }
        let started = try retry("starting a helper command", deadline: deadline, abortable: abortable) {
            Int(libssh2_channel_process_startup(channel, "exec", 4, command, UInt32(command.utf8.count)))
        }
        guard started == 0 else {
            throw RemoteExecutionError(.protocolError, "the server refused a helper command: \(lastErrorMessage())")
        }
        var stdout: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var progressed = false
            for stream in [Int32(0), SSH_EXTENDED_DATA_STDERR] {
                let count = buffer.withUnsafeMutableBytes { bytes in
                    libssh2_channel_read_ex(channel, stream, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), bytes.count)
                }
                if count > 0 {
                    if stream == 0 { stdout += buffer[0..<count] }
                    progressed = true
                } else if count < 0 && count != Int(LIBSSH2_ERROR_EAGAIN) {
                    throw RemoteExecutionError(.protocolError, "a helper command failed: \(lastErrorMessage())")
                }
            }
            if progressed { continue }
            if libssh2_channel_eof(channel) != 0 { break }
            guard try waitForSession(deadline: deadline, abortable: abortable) else {
                throw RemoteExecutionError(.protocolError, "a helper command on \(target.host) timed out")
            }
        }
        _ = try retry("closing a helper channel", deadline: deadline, abortable: false) {
            Int(libssh2_channel_close(channel))
        }
        _ = try retry("closing a helper channel", deadline: deadline, abortable: false) {
            Int(libssh2_channel_wait_closed(channel))
        }
        return HelperResult(exitStatus: libssh2_channel_get_exit_status(channel), stdout: stdout)
    }

    private func openChannel(deadline: ContinuousClock.Instant, abortable: Bool) throws -> OpaquePointer {
        guard let session else { throw RemoteExecutionError(.protocolError, "no session") }
        let channel = try retryPointer("opening a channel", deadline: deadline, abortable: abortable) {
            libssh2_channel_open_ex(session, "session", 7, 2 * 1024 * 1024, 32 * 1024, nil, 0)
        }
        guard let channel else {
            throw RemoteExecutionError(.protocolError, "cannot open a channel to \(target.host): \(lastErrorMessage())")
        }
        return channel
    }

    // MARK: waiting

    /// Repeats a libssh2 call while it returns EAGAIN, waiting for the socket in between.
    private func retry(
        _ what: String, deadline: ContinuousClock.Instant, abortable: Bool, _ call: () -> Int
    ) throws -> Int {
        while true {
            let status = call()
            if status != Int(LIBSSH2_ERROR_EAGAIN) { return status }
            guard try waitForSession(deadline: deadline, abortable: abortable) else {
                throw RemoteExecutionError(.protocolError, "timed out: \(what) on \(target.host) port \(target.port)")
            }
        }
    }

    /// Like ``retry(_:deadline:abortable:_:)`` for calls that return a handle or nil.
    private func retryPointer(
        _ what: String, deadline: ContinuousClock.Instant, abortable: Bool, _ call: () -> OpaquePointer?
    ) throws -> OpaquePointer? {
        while true {
            if let pointer = call() { return pointer }
            guard let session, libssh2_session_last_errno(session) == LIBSSH2_ERROR_EAGAIN else { return nil }
            guard try waitForSession(deadline: deadline, abortable: abortable) else {
                throw RemoteExecutionError(.protocolError, "timed out: \(what) on \(target.host) port \(target.port)")
            }
        }
    }

    /// Waits until the socket is ready in the direction libssh2 is blocked on, a wakeup arrives, or
    /// the deadline passes (false). Before the script starts, a termination request aborts the wait.
    private func waitForSession(deadline: ContinuousClock.Instant?, abortable: Bool) throws -> Bool {
        var events: Int16 = 0
        if let session {
            let directions = libssh2_session_block_directions(session)
            if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
            if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        }
        if events == 0 { events = Int16(POLLIN) }
        return try waitFor(fd: socketFD, events: events, deadline: deadline, abortable: abortable, wakeupEndsWait: true)
    }

    private func waitFor(
        fd: Int32, events: Int16, deadline: ContinuousClock.Instant?, abortable: Bool, wakeupEndsWait: Bool = false
    ) throws -> Bool {
        while true {
            var timeout: Int32 = -1
            if let deadline {
                let remaining = deadline - ContinuousClock.now
                if remaining <= .zero { return false }
                let (seconds, attoseconds) = remaining.components
                timeout = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            }
            var fds = [
                pollfd(fd: fd, events: events, revents: 0),
                pollfd(fd: control.wakeupFD, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                throw RemoteExecutionError(.protocolError, "poll failed: \(String(cString: strerror(errno)))")
            }
            if fds[1].revents != 0 {
                control.drainWakeups()
                if abortable, let abort = control.takePendingWork().abortBeforeStart { throw abort }
                if wakeupEndsWait { return true }
            }
            if fds[0].revents != 0 { return true }
            if ready == 0 && deadline != nil && ContinuousClock.now >= deadline! { return false }
        }
    }

    private func lastErrorMessage() -> String {
        guard let session else { return "no session" }
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        let code = libssh2_session_last_error(session, &message, &length, 0)
        guard let message, length > 0 else { return "libssh2 error \(code)" }
        return String(cString: message)
    }
}
