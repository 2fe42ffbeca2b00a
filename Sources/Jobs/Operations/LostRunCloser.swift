import Foundation
import Logging
import OperationLogs
import Store

/// Closes the log of an operation whose worker died: a last line saying so, the live log's
/// end marker, and the archive of what the live log held, so readers see the end and the log
/// outlives its Redis stream.
struct LostRunCloser: Sendable {
    let log: OperationLog
    let archive: OperationLogArchive

    func close(_ operation: Store.Operation, logger: Logger) async {
        do {
            try await log.append(
                [
                    (
                        stream: "system",
                        text: "[harrow] the worker running this operation (\(operation.runner ?? "unknown")) stopped renewing its lease: "
                            + "the operation failed as worker_lost and its script is not run again"
                    )
                ], to: operation.id)
            var lines: [OperationLogArchive.Line] = []
            var cursor = "0"
            while true {
                let chunk = try await log.read(operation.id, after: cursor, limit: 1000)
                lines += chunk.lines.map { OperationLogArchive.Line(id: $0.id, stream: $0.stream, text: $0.text, t: $0.t) }
                guard chunk.next != cursor, !chunk.lines.isEmpty || !chunk.finished else { break }
                cursor = chunk.next
                if chunk.lines.isEmpty { break }
            }
            try await log.finish(operation.id)
            try await archive.store(OperationLogArchive.Log(lines: lines), of: operation.id)
        } catch {
            logger.warning(
                "the log of a lost operation could not be closed", metadata: ["error": "\(error)", "operation_id": "\(operation.id)"])
        }
    }
}
