import Foundation

/// The executables of this package's build (`worker`, `queue-inspect`), for tests of whole
/// processes: crashes, signals, the command line.
public enum BuiltExecutables {
    /// Where the executables are: `HARROW_BIN_DIR`, else next to the test bundle (SwiftPM puts
    /// every product of a build in one directory).
    public static var directory: URL {
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

    public static func url(_ name: String) -> URL {
        directory.appendingPathComponent(name)
    }

    /// The outcome of a finished command.
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs executable `name` with `arguments` and `environment` and waits for it (bounded).
    /// Output goes to temp files, not pipes: reading a pipe to its end would block one of the
    /// concurrency pool's few threads for the whole run, and stall every other test.
    /// `input` becomes the process's standard input (else it reads nothing).
    public static func run(
        _ name: String, _ arguments: [String], environment: [String: String], input: String? = nil, timeout: Duration = .seconds(60)
    ) async throws -> Output {
        let directory = FileManager.default.temporaryDirectory
        let outURL = directory.appendingPathComponent("harrow-\(name)-\(UUID().uuidString).out")
        let errURL = directory.appendingPathComponent("harrow-\(name)-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let process = Process()
        process.executableURL = url(name)
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        if let input {
            let inURL = directory.appendingPathComponent("harrow-\(name)-\(UUID().uuidString).in")
            try Data(input.utf8).write(to: inURL)
            defer { try? FileManager.default.removeItem(at: inURL) }
            process.standardInput = try FileHandle(forReadingFrom: inURL)
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        try process.runWithUnblockedSignals()
        do {
            try await eventually("\(name) exits", timeout: timeout, poll: .milliseconds(10)) { !process.isRunning }
        } catch {
            process.terminate()
            throw error
        }
        return Output(
            status: process.terminationStatus, stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }
}
