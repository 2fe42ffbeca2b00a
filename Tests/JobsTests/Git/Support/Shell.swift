import Foundation

struct CommandFailed: Error, CustomStringConvertible {
    let description: String
}

/// Runs a command to completion and returns its standard output; throws with its standard error
/// when it fails. Tests only: it blocks the calling thread.
@discardableResult
func run(_ executable: String, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    var merged = ProcessInfo.processInfo.environment
    merged.merge(environment) { $1 }
    process.environment = merged
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
        throw CommandFailed(
            description: "\(executable) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus): "
                + String(decoding: stderr, as: UTF8.self)
        )
    }
    return String(decoding: stdout, as: UTF8.self)
}

/// The git command line with a fixed identity and no user or system configuration.
@discardableResult
func git(_ arguments: String..., in directory: URL) throws -> String {
    try run(
        "/usr/bin/git",
        arguments,
        in: directory,
        environment: [
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Harrow Test",
            "GIT_AUTHOR_EMAIL": "test@harrow.invalid",
            "GIT_COMMITTER_NAME": "Harrow Test",
            "GIT_COMMITTER_EMAIL": "test@harrow.invalid",
        ]
    ).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A fresh directory under the system's temporary directory, removed by `remove()`.
struct TemporaryDirectory: Sendable {
    let url: URL

    init(_ label: String = "git-checkout-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func appending(_ component: String) -> URL {
        url.appendingPathComponent(component)
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}
