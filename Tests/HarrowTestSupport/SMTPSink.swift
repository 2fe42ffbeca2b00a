import Foundation

/// A real SMTP server on loopback for one test: `scripts/smtp_sink.py` (aiosmtpd) in a subprocess.
///
/// Needs Debian's `python3-aiosmtpd`; `SMTP_SINK_PYTHON` names another interpreter that has it.
public final class SMTPSink {
    /// One message the sink accepted, as the script describes it (see its docstring).
    public struct Message: Decodable, Sendable {
        public struct Part: Decodable, Sendable {
            public let contentType: String
            public let charset: String?
            public let transferEncoding: String?
            public let content: String
        }

        public let mailFrom: String
        public let rcptTos: [String]
        public let rawBase64: String
        /// Header names and values exactly as sent (folding included).
        public let rawHeaders: [[String]]
        /// Header names and values as a mail reader decodes them.
        public let headers: [[String]]
        public let contentType: String
        public let parts: [Part]
        public let defects: [String]
        public let maxLineLength: Int
        public let bareLineBreaks: Int

        public var raw: String { String(decoding: Data(base64Encoded: rawBase64) ?? Data(), as: UTF8.self) }
        public var headerNames: [String] { rawHeaders.map { $0[0] } }
        public func header(_ name: String) -> String? { headers.first { $0[0].lowercased() == name.lowercased() }?[1] }
        public func rawHeader(_ name: String) -> String? { rawHeaders.first { $0[0].lowercased() == name.lowercased() }?[1] }
    }

    public let port: Int
    private let process: Process
    private let directory: URL
    private let exited: Task<Void, Never>

    public var url: String { "smtp://127.0.0.1:\(port)" }

    /// Starts the sink and waits until it listens.
    public static func start(_ arguments: [String] = []) async throws -> SMTPSink {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("smtp-sink-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let ready = directory.appendingPathComponent("ready")

        // Tests/HarrowTestSupport/SMTPSink.swift → package root → scripts/smtp_sink.py
        let script = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/smtp_sink.py")
        let process = Process()
        process.executableURL = URL(
            fileURLWithPath: ProcessInfo.processInfo.environment["SMTP_SINK_PYTHON"] ?? "/usr/bin/python3")
        process.arguments =
            [
                script.path, "--out", directory.appendingPathComponent("messages.jsonl").path,
                "--ready-file", ready.path,
            ] + arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = try FileHandle(
            forWritingTo: {
                let log = directory.appendingPathComponent("stderr.log")
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
                return log
            }())
        // Waiting for exit without blocking a concurrency-pool thread.
        let (exitStream, exitContinuation) = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exitContinuation.finish() }
        try process.run()
        let exited = Task { for await _ in exitStream {} }

        for _ in 0..<200 {
            if let text = try? String(contentsOf: ready, encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                return SMTPSink(port: port, process: process, directory: directory, exited: exited)
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOf: directory.appendingPathComponent("stderr.log"), encoding: .utf8)) ?? ""
        process.terminate()
        throw SinkError(message: "smtp_sink.py did not start (needs python3-aiosmtpd): \(log)")
    }

    private init(port: Int, process: Process, directory: URL, exited: Task<Void, Never>) {
        self.port = port
        self.process = process
        self.directory = directory
        self.exited = exited
    }

    /// The messages accepted so far, in order.
    public func messages() throws -> [Message] {
        try inbox.messages()
    }

    /// Where the sink's messages are read from: a value that can go where the sink can't (a
    /// `@Sendable` closure).
    public var inbox: Inbox { Inbox(file: directory.appendingPathComponent("messages.jsonl")) }

    /// The file the sink writes each accepted message to, as a JSON line.
    public struct Inbox: Sendable {
        let file: URL

        /// The messages accepted so far, in order.
        public func messages() throws -> [Message] {
            guard let text = try? String(contentsOf: file, encoding: .utf8) else { return [] }
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try text.split(separator: "\n").map { try decoder.decode(Message.self, from: Data($0.utf8)) }
        }
    }

    /// Stops the process and removes its files.
    public func stop() async {
        process.terminate()
        await exited.value
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs `body` with a started sink and always stops it.
    public static func with<T>(_ arguments: [String] = [], _ body: (SMTPSink) async throws -> T) async throws -> T {
        let sink = try await start(arguments)
        do {
            let result = try await body(sink)
            await sink.stop()
            return result
        } catch {
            await sink.stop()
            throw error
        }
    }

    struct SinkError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
