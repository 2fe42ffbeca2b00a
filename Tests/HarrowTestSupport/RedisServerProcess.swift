import Foundation
import NIOCore
import Queue

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A private `redis-server` for tests that stop, kill or restart Redis, or need a password.
///
/// It listens on a free loopback port, keeps its files in a temp dir of its own (under
/// `HARROW_TEST_TMPDIR` when set), and runs the binary named by `HARROW_TEST_REDIS_SERVER`
/// (else `redis-server` from `PATH`). ``restart()`` brings it back on the same port and dir, so
/// clients reconnect to it and, with ``Options/appendOnly``, find their data again.
///
/// Never leaks: ``withServer(_:_:)`` shuts it down on every path, and `deinit` kills a server
/// still running and removes its dir.
///
/// `@unchecked Sendable`: the `let` properties never change, and the mutable ones (`process`,
/// `removed`) are read and written only while holding `lock`.
public final class RedisServerProcess: @unchecked Sendable {
    public struct Options: Sendable {
        /// `--appendonly yes --appendfsync everysec`: data survives ``stop()`` and ``restart()``.
        public var appendOnly: Bool
        /// `--requirepass`.
        public var password: String?
        /// Also listen on a unix socket in the server's dir (``unixSocketPath``).
        public var unixSocket: Bool
        /// More `redis-server` arguments, for example `["--enable-debug-command", "yes"]`.
        public var extraArguments: [String]
        /// How long (re)starting may take until the server answers `PING`.
        public var startupTimeout: Duration

        public init(
            appendOnly: Bool = false,
            password: String? = nil,
            unixSocket: Bool = false,
            extraArguments: [String] = [],
            startupTimeout: Duration = .seconds(10)
        ) {
            self.appendOnly = appendOnly
            self.password = password
            self.unixSocket = unixSocket
            self.extraArguments = extraArguments
            self.startupTimeout = startupTimeout
        }
    }

    /// Why a server could not be started.
    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public let options: Options
    /// The loopback port, the same across restarts.
    public let port: Int
    /// The server's working dir (AOF files, log, unix socket).
    public let directory: URL
    private let executable: String
    private let lock = NSLock()
    private var process: Process?
    private var removed = false

    private init(options: Options, port: Int, directory: URL, executable: String) {
        self.options = options
        self.port = port
        self.directory = directory
        self.executable = executable
    }

    deinit {
        if let process, process.isRunning {
            Self.send(SIGKILL, to: process)
            process.waitUntilExit()
        }
        if !removed { try? FileManager.default.removeItem(at: directory) }
    }

    /// Starts a server and waits until it answers.
    public static func start(_ options: Options = Options()) async throws -> RedisServerProcess {
        let executable = try findExecutable()
        var lastError: (any Error)?
        for _ in 0..<5 {
            let directory = try makeDirectory()
            let server = RedisServerProcess(
                options: options, port: try LoopbackPort.unused(), directory: directory, executable: executable)
            do {
                try await server.launch()
                return server
            } catch let failure as Failure where failure.message.contains("Address already in use") {
                // Someone took the port between choosing and binding it: choose again.
                lastError = failure
                await server.shutdown()
            } catch {
                await server.shutdown()
                throw error
            }
        }
        throw lastError ?? Failure(message: "could not start redis-server")
    }

    /// Runs `body` with a fresh server, then shuts it down and removes its dir, whatever happens.
    public static func withServer<T>(
        _ options: Options = Options(), _ body: (RedisServerProcess) async throws -> T
    ) async throws -> T {
        let server = try await start(options)
        do {
            let result = try await body(server)
            await server.shutdown()
            return result
        } catch {
            await server.shutdown()
            throw error
        }
    }

    /// `redis://[:password@]127.0.0.1:port/database`, the password percent-encoded.
    public func url(database: Int = 0) -> String {
        var credentials = ""
        if let password = options.password {
            credentials =
                ":" + (password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? password) + "@"
        }
        return "redis://\(credentials)127.0.0.1:\(port)/\(database)"
    }

    /// The unix socket path when ``Options/unixSocket`` is set.
    public var unixSocketPath: String? {
        options.unixSocket ? directory.appendingPathComponent("redis.sock").path : nil
    }

    /// A configuration for this server with its password, quick to give up and to reconnect
    /// (tests restart servers), adjusted by `configure`.
    public func configuration(_ configure: (inout RedisConfiguration) -> Void = { _ in }) -> RedisConfiguration {
        var configuration = RedisConfiguration(
            address: .tcp(host: "127.0.0.1", port: port),
            password: options.password,
            connectTimeout: .seconds(2),
            commandTimeout: .seconds(5),
            poolSize: 1,
            reconnectDelay: .milliseconds(20),
            maxReconnectDelay: .milliseconds(200))
        configure(&configuration)
        return configuration
    }

    /// Whether the server process is running.
    public var isRunning: Bool {
        lock.withLock { process?.isRunning ?? false }
    }

    /// Whether something on ``port`` answers `PING` right now (checked with a plain socket, not
    /// with the client under test).
    public var isAnswering: Bool {
        guard let reply = LoopbackPort.exchange(port: port, request: "PING\r\n") else { return false }
        return reply.hasPrefix("+PONG") || reply.hasPrefix("-NOAUTH")
    }

    /// The server's log so far (for failure messages).
    public func log() -> String {
        let files = ["redis.log", "stderr.log"].map { directory.appendingPathComponent($0) }
        return files.compactMap { try? String(contentsOf: $0, encoding: .utf8) }.joined(separator: "\n")
    }

    /// Asks the server to shut down (SIGTERM, which also flushes the AOF) and waits until it has
    /// exited; kills it if it has not within `timeout`.
    public func stop(timeout: Duration = .seconds(10)) async throws {
        try await signal(SIGTERM, waiting: timeout)
    }

    /// Kills the server (SIGKILL: no shutdown, like a crash or power loss) and waits until it is gone.
    public func kill() async throws {
        try await signal(SIGKILL, waiting: .seconds(10))
    }

    /// Starts the server again on the same port and dir, after ``stop()`` or ``kill()``.
    public func restart() async throws {
        if isRunning { try await stop() }
        // The old server's port may take a moment to be free again; retry "address in use".
        let clock = ContinuousClock()
        let deadline = clock.now + options.startupTimeout
        while true {
            do {
                try await launch()
                return
            } catch let failure as Failure
                where failure.message.contains("Address already in use") && clock.now < deadline
            {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// Stops the server (killing it if it will not stop) and removes its dir. Idempotent.
    public func shutdown() async {
        do {
            try await stop(timeout: .seconds(5))
        } catch {
            try? await kill()
        }
        lock.withLock {
            if !removed {
                try? FileManager.default.removeItem(at: directory)
                removed = true
            }
        }
    }

    // MARK: - Internals

    private var arguments: [String] {
        var arguments = [
            "--port", String(port), "--bind", "127.0.0.1", "--dir", directory.path, "--daemonize", "no",
            "--save", "", "--logfile", directory.appendingPathComponent("redis.log").path,
            "--appendonly", options.appendOnly ? "yes" : "no",
        ]
        if options.appendOnly { arguments += ["--appendfsync", "everysec"] }
        if let password = options.password { arguments += ["--requirepass", password] }
        if let unixSocketPath { arguments += ["--unixsocket", unixSocketPath, "--unixsocketperm", "700"] }
        return arguments + options.extraArguments
    }

    private func launch() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let stderrPath = directory.appendingPathComponent("stderr.log").path
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: stderrPath) ?? FileHandle.nullDevice
        try lock.withLock {
            if let running = self.process, running.isRunning {
                throw Failure(message: "redis-server on port \(port) is already running")
            }
            try process.runWithUnblockedSignals()
            self.process = process
        }
        let clock = ContinuousClock()
        let deadline = clock.now + options.startupTimeout
        while true {
            if !process.isRunning {
                throw Failure(
                    message:
                        "redis-server on port \(port) exited at start (status \(process.terminationStatus)):\n\(log())")
            }
            if isAnswering { return }
            if clock.now >= deadline {
                Self.send(SIGKILL, to: process)
                throw Failure(
                    message: "redis-server on port \(port) did not answer within \(options.startupTimeout):\n\(log())")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    private func signal(_ signal: Int32, waiting timeout: Duration) async throws {
        guard let process = lock.withLock({ self.process }), process.isRunning else { return }
        Self.send(signal, to: process)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning {
            if clock.now >= deadline {
                Self.send(SIGKILL, to: process)
                throw Failure(
                    message: "redis-server on port \(port) did not exit within \(timeout) of signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    private static func send(_ signal: Int32, to process: Process) {
        #if canImport(Glibc)
            _ = Glibc.kill(process.processIdentifier, signal)
        #else
            _ = Darwin.kill(process.processIdentifier, signal)
        #endif
    }

    private static func findExecutable() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["HARROW_TEST_REDIS_SERVER"], !path.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw Failure(message: "HARROW_TEST_REDIS_SERVER=\(path) is not an executable")
            }
            return path
        }
        for directory in (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/redis-server"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Failure(message: "redis-server not found: set HARROW_TEST_REDIS_SERVER or put it on PATH")
    }

    private static func makeDirectory() throws -> URL {
        let environment = ProcessInfo.processInfo.environment
        let base =
            environment["HARROW_TEST_TMPDIR"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory
        let directory = base.appendingPathComponent("redis-\(TestRedis.randomHex())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }
}
