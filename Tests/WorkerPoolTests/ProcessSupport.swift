import Foundation
import HarrowTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `worker` and `queue-inspect` executables, for tests of whole processes:
/// crashes, signals, the command line.
enum ProcessSupport {
    /// Where the executables are: `HARROW_BIN_DIR`, else next to the test bundle (SwiftPM puts
    /// every product of a build in one directory).
    static var binaryDirectory: URL {
        if let directory = ProcessInfo.processInfo.environment["HARROW_BIN_DIR"] {
            return URL(fileURLWithPath: directory)
        }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: url.appendingPathComponent("worker").path) { return url }
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(".build/debug")
    }

    static func executable(_ name: String) -> URL {
        binaryDirectory.appendingPathComponent(name)
    }

    /// The outcome of a finished command.
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `queue-inspect` with `arguments` and waits for it (bounded).
    static func queueInspect(_ arguments: [String], redisURL: String, keyPrefix: String) async throws -> Output {
        let process = Process()
        process.executableURL = executable("queue-inspect")
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REDIS_URL"] = redisURL
        environment["HARROW_KEY_PREFIX"] = keyPrefix
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.runWithUnblockedSignals()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        try await eventually("queue-inspect exits", timeout: .seconds(30), poll: .milliseconds(10)) { !process.isRunning }
        return Output(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// A `worker` process, its log in a temp file.
final class WorkerProcess {
    let process = Process()
    let logURL: URL

    init(
        queues: String, concurrency: Int = 10, redisURL: String, keyPrefix: String, shutdownTimeout: Double = 25,
        deadWorkerAfter: Double = 30, heartbeatInterval: Double = 5
    ) throws {
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("harrow-worker-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = ProcessSupport.executable("worker")
        process.arguments = [
            "--queues", queues, "--concurrency", "\(concurrency)", "--redis-url", redisURL, "--key-prefix", keyPrefix,
            "--shutdown-timeout", "\(shutdownTimeout)", "--dead-worker-after", "\(deadWorkerAfter)", "--heartbeat-interval",
            "\(heartbeatInterval)", "--log-level", "info",
        ]
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.runWithUnblockedSignals()
    }

    var isRunning: Bool { process.isRunning }

    func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to exit and returns its status; throws when it has not within `timeout`.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        try await eventually("worker exits", timeout: timeout, poll: .milliseconds(20)) { !self.process.isRunning }
        return process.terminationStatus
    }

    func log() -> String {
        (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: logURL)
    }
}
