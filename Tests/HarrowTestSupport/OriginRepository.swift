import Foundation

/// A bare repository that plays the remote ("origin"), and a working clone to make commits and push.
public struct OriginRepository: Sendable {
    /// The bare repository servers serve.
    public let bare: URL
    private let work: URL

    /// Creates `<parent>/<name>.git` with one commit on `defaultBranch`, which becomes its HEAD.
    public init(in parent: URL, name: String, defaultBranch: String = "main") throws {
        bare = parent.appendingPathComponent("\(name).git", isDirectory: true)
        work = parent.appendingPathComponent("\(name)-work", isDirectory: true)
        try FileManager.default.createDirectory(at: bare, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        try TestCommand.git(["init", "-q", "--bare", "-b", defaultBranch, bare.path], in: parent)
        try TestCommand.git(["init", "-q", "-b", defaultBranch], in: work)
        try TestCommand.git(["remote", "add", "origin", bare.path], in: work)
        try commit(["README.md": "# \(name)\n"], message: "initial commit", on: defaultBranch)
    }

    /// Commits `files` on `branch` (created from the current commit when new), pushes, returns the sha.
    @discardableResult
    public func commit(_ files: [String: String], message: String, on branch: String) throws -> String {
        let branches = try TestCommand.git(["branch", "--list", branch], in: work)
        if branches.isEmpty && (try? TestCommand.git(["rev-parse", "--verify", "-q", "HEAD"], in: work)) != nil {
            try TestCommand.git(["checkout", "-q", "-b", branch], in: work)
        } else if !branches.isEmpty {
            try TestCommand.git(["checkout", "-q", branch], in: work)
        }
        for (path, contents) in files {
            let file = work.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(contents.utf8).write(to: file)
        }
        try TestCommand.git(["add", "-A"], in: work)
        try TestCommand.git(["commit", "-q", "-m", message], in: work)
        try TestCommand.git(["push", "-q", "origin", branch], in: work)
        return try TestCommand.git(["rev-parse", "HEAD"], in: work)
    }

    /// Adds a large incompressible file, so fetching it takes many packets.
    public func commitRandomFile(bytes: Int, on branch: String) throws {
        var generator = SystemRandomNumberGenerator()
        let data = Data((0..<bytes).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try data.write(to: work.appendingPathComponent("random.bin"))
        try TestCommand.git(["checkout", "-q", branch], in: work)
        try TestCommand.git(["add", "-A"], in: work)
        try TestCommand.git(["commit", "-q", "-m", "random data"], in: work)
        try TestCommand.git(["push", "-q", "origin", branch], in: work)
    }

    /// Creates an annotated tag at the tip of `branch` and pushes it; returns the tag object's sha.
    @discardableResult
    public func annotatedTag(_ name: String, at branch: String) throws -> String {
        try TestCommand.git(["tag", "-a", name, "-m", "release \(name)", branch], in: work)
        try TestCommand.git(["push", "-q", "origin", name], in: work)
        return try TestCommand.git(["rev-parse", name], in: work)
    }
}
