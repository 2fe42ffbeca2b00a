import Foundation

/// A built executable running in the background (a `worker`, an `api-server`), its output in a
/// temp file; killed with SIGKILL if a test leaves it running.
public final class RunningExecutable {
    public let process = Process()
    public let logURL: URL

    public init(_ name: String, _ arguments: [String], environment: [String: String]) throws {
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("harrow-\(name)-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = BuiltExecutables.url(name)
        process.arguments = arguments
        process.environment = environment
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.runWithUnblockedSignals()
    }

    public var isRunning: Bool { process.isRunning }

    public func signal(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to exit and returns its status; throws when it has not within `timeout`.
    public func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await eventually("the process exits", timeout: timeout, poll: .milliseconds(20)) { !self.process.isRunning }
        return process.terminationStatus
    }

    /// Everything it wrote so far.
    public func log() -> String {
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
