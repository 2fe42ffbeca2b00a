import Foundation

/// `scripts/git_http_server.py` as a subprocess: smart HTTP for the bare repositories under a
/// directory, on a free loopback port.
public final class HTTPGitServer: Sendable {
    public let port: Int
    private let process: Process
    /// The server exits when this closes, including when the test process dies.
    private let lifeline: Pipe

    /// Tests/HarrowTestSupport/HTTPGitServer.swift → package root → scripts/git_http_server.py
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/git_http_server.py")

    /// Serves `root`; with `basicAuth`, requires that user name and password.
    public init(root: URL, basicAuth: (user: String, password: String)? = nil, trickle: (bytes: Int, delay: Double)? = nil) throws {
        var arguments = [Self.script.path, root.path]
        if let basicAuth { arguments += ["--user", basicAuth.user, "--password", basicAuth.password] }
        if let trickle { arguments += ["--trickle-bytes", String(trickle.bytes), "--trickle-delay", String(trickle.delay)] }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = arguments
        let output = Pipe()
        let lifeline = Pipe()
        process.standardInput = lifeline
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { break }
            line.append(chunk)
        }
        guard let port = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            process.terminate()
            throw TestCommand.Failure(description: "git_http_server.py did not print its port")
        }
        self.port = port
        self.process = process
        self.lifeline = lifeline
    }

    public func url(_ repository: String) -> String {
        "http://127.0.0.1:\(port)/\(repository)"
    }

    public func stop() {
        guard process.isRunning else { return }
        try? lifeline.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    deinit {
        stop()
    }
}
