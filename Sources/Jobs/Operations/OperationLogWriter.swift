import Foundation
import Logging
import NIOCore
import OperationLogs

/// Turns a running operation's output into log lines: split at newlines and at 64 KiB, secret
/// values masked, numbered with stream ids of its own (so the archive keeps the ids live
/// readers saw), sent to the operation's Redis stream in batches while the script runs, and
/// kept for the archive. Past the cap, one notice line is written and the rest dropped; the
/// script keeps running.
actor OperationLogWriter {
    /// The longest line: longer output is split into lines of this many bytes.
    static let maximumLineBytes = 65_536
    /// What a line costs against the cap beside its text: `yes ''` must reach the cap too.
    static let lineOverhead = 64
    /// Lines the failure mail quotes.
    static let tailLines = 20

    let operation: UUID
    let log: OperationLog
    let masker: SecretMasker
    let cap: Int
    let logger: Logger

    private var partial: [LocalProcess.Stream: [UInt8]] = [:]
    private var pending: [OperationLog.Line] = []
    private(set) var lines: [OperationLog.Line] = []
    private var storedBytes = 0
    private var capped = false
    private var finished = false
    private var marksEnd = true
    private var lastMilliseconds: Int64
    private var lastSequence: Int64
    private var redisFailing = false
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    /// A writer whose lines follow the stream entry `after` (the log's last entry, when an
    /// earlier delivery wrote some).
    init(operation: UUID, log: OperationLog, masker: SecretMasker, cap: Int, after: String, logger: Logger) {
        self.operation = operation
        self.log = log
        self.masker = masker
        self.cap = cap
        self.logger = logger
        let parts = after.split(separator: "-")
        lastMilliseconds = Int64(parts.first ?? "0") ?? 0
        lastSequence = parts.count > 1 ? Int64(parts[1]) ?? 0 : 0
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Output of the script, as it came.
    func write(_ stream: LocalProcess.Stream, _ buffer: ByteBuffer) {
        var bytes = partial[stream] ?? []
        var start = bytes.count
        bytes.append(contentsOf: buffer.readableBytesView)
        var lineStart = 0
        while let newline = bytes[start...].firstIndex(of: 0x0A) {
            emitSplit(stream, bytes[lineStart..<newline])
            lineStart = newline + 1
            start = lineStart
        }
        var rest = Array(bytes[lineStart...])
        while rest.count >= Self.maximumLineBytes {
            emit(stream.rawValue, rest[..<Self.maximumLineBytes])
            rest.removeFirst(Self.maximumLineBytes)
        }
        partial[stream] = rest
    }

    /// A line of Harrow's own about the run (checkouts, time limit, cancel), stream `system`.
    func note(_ text: String) {
        append(OperationLog.Line(id: "", stream: "system", text: masker.mask(text), t: 0), counted: false)
    }

    /// Ends the writer: the last partial lines, everything sent, and, when `endingLog`, the
    /// end marker (not when the operation is given back for a retry, which goes on writing).
    /// Returns every line kept, for the archive.
    func finish(endingLog: Bool = true) async -> [OperationLog.Line] {
        marksEnd = endingLog
        for stream in [LocalProcess.Stream.stdout, .stderr] {
            if let rest = partial[stream], !rest.isEmpty { emit(stream.rawValue, rest[...]) }
            partial[stream] = nil
        }
        finished = true
        wake.yield()
        wake.finish()
        return lines
    }

    /// The last lines of output, for the failure mail.
    var tail: [String] {
        lines.suffix(Self.tailLines).map { String($0.text.prefix(500)) }
    }

    /// Sends pending lines to Redis until the log is finished, batching whatever came while
    /// the previous batch was on its way. A Redis that fails is logged once; the lines stay
    /// for the archive.
    func run() async {
        for await _ in wakeups {
            await flush()
        }
        await flush()
        guard marksEnd else { return }
        do {
            try await log.finish(operation)
        } catch {
            logger.warning("the end of the operation's live log could not be written", metadata: ["error": "\(error)"])
        }
    }

    private func flush() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(1000))
            pending.removeFirst(batch.count)
            do {
                try await log.append(batch, to: operation)
                if redisFailing {
                    redisFailing = false
                    logger.info("the operation's live log reaches Redis again")
                }
            } catch {
                if !redisFailing {
                    logger.warning(
                        "the operation's live log could not be sent to Redis; its lines are kept for the archive",
                        metadata: ["error": "\(error)"])
                }
                redisFailing = true
            }
        }
    }

    private func emitSplit(_ stream: LocalProcess.Stream, _ bytes: ArraySlice<UInt8>) {
        var bytes = bytes
        while bytes.count > Self.maximumLineBytes {
            emit(stream.rawValue, bytes.prefix(Self.maximumLineBytes))
            bytes = bytes.dropFirst(Self.maximumLineBytes)
        }
        emit(stream.rawValue, bytes)
    }

    private func emit(_ stream: String, _ bytes: ArraySlice<UInt8>) {
        append(OperationLog.Line(id: "", stream: stream, text: masker.mask(String(decoding: bytes, as: UTF8.self)), t: 0), counted: true)
    }

    private func append(_ line: OperationLog.Line, counted: Bool) {
        if counted {
            if capped { return }
            // Each line costs its text and its entry (ids, stream, time): empty lines count too.
            let cost = line.text.utf8.count + Self.lineOverhead
            if storedBytes + cost > cap {
                capped = true
                append(
                    OperationLog.Line(
                        id: "", stream: "system",
                        text: "[harrow] the log reached its cap of \(cap) bytes: further output is dropped (the script keeps running)", t: 0
                    ),
                    counted: false)
                return
            }
            storedBytes += cost
        }
        var line = line
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if now > lastMilliseconds {
            lastMilliseconds = now
            lastSequence = 0
        } else {
            lastSequence += 1
        }
        line.id = "\(lastMilliseconds)-\(lastSequence)"
        line.t = now
        lines.append(line)
        pending.append(line)
        wake.yield()
    }
}
