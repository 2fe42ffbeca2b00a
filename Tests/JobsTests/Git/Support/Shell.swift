import Foundation
import HarrowTestSupport

typealias CommandFailed = TestCommand.Failure

/// Runs a command to completion and returns its standard output (see ``TestCommand``).
@discardableResult
func run(_ executable: String, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]) throws -> String {
    try TestCommand.run(executable, arguments, in: directory, environment: environment)
}

/// The git command line with a fixed identity and no user or system configuration.
@discardableResult
func git(_ arguments: String..., in directory: URL) throws -> String {
    try TestCommand.git(arguments, in: directory)
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
