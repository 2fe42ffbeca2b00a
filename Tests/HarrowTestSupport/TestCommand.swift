import Foundation

/// Commands tests run to completion (git, ssh-keygen): they block the calling thread.
public enum TestCommand {
    /// Runs `executable arguments…` in `directory` with this process's environment and
    /// `environment` over it; its standard output. Throws with its standard error when it fails.
    @discardableResult
    public static func run(
        _ executable: String, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]
    ) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Read before waiting: a full pipe would otherwise block the child forever.
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(
                description: "\(executable) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): "
                    + String(decoding: stderr, as: UTF8.self))
        }
        return String(decoding: stdout, as: UTF8.self)
    }

    /// Runs git in `directory` with a fixed identity and no user or system configuration; its
    /// standard output, trimmed.
    @discardableResult
    public static func git(_ arguments: [String], in directory: URL) throws -> String {
        try run(
            "/usr/bin/git", arguments, in: directory,
            environment: [
                "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Harrow Test",
                "GIT_AUTHOR_EMAIL": "test@harrow.invalid", "GIT_COMMITTER_NAME": "Harrow Test",
                "GIT_COMMITTER_EMAIL": "test@harrow.invalid",
            ]
        ).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A command that failed, with what it wrote to standard error.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) {
            self.description = description
        }
    }
}
