import Foundation

/// The git command line for tests, with a fixed identity and no user or system configuration.
public enum TestGit {
    /// Runs `git arguments…` in `directory`; its standard output, trimmed. Throws with its
    /// standard error when it fails. Blocks the calling thread.
    @discardableResult
    public static func run(_ arguments: String..., in directory: URL) throws -> String {
        try run(arguments, in: directory)
    }

    /// Runs `git arguments…` in `directory`, the arguments as an array.
    @discardableResult
    public static func run(_ arguments: [String], in directory: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        var environment = ProcessInfo.processInfo.environment
        environment.merge([
            "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Harrow Test",
            "GIT_AUTHOR_EMAIL": "test@harrow.invalid", "GIT_COMMITTER_NAME": "Harrow Test", "GIT_COMMITTER_EMAIL": "test@harrow.invalid",
        ]) { $1 }
        process.environment = environment
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
                description: "git \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): "
                    + String(decoding: stderr, as: UTF8.self))
        }
        return String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A git command that failed, with what it wrote to standard error.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }
}
