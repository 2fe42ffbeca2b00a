import Foundation
import Logging
import OperationLogs
import Queue
import ServiceLifecycle
import Store
import WorkerPool

/// Fails running operations whose lease ran out (their worker died and nothing redelivered
/// their job, or its redelivery came while the lease still held) as `worker_lost`, closes their
/// logs, and queues what their failure causes. One sweeper is active at a time across workers,
/// under a Redis lease; two at once would still fail each operation once.
public struct LostRunSweeper: Service {
    let operations: OperationStore
    let closer: LostRunCloser
    let jobQueue: JobQueue
    let holder: String
    let interval: Duration
    let publicURL: String
    let logger: Logger

    public init(
        operations: OperationStore, log: OperationLog, archive: OperationLogArchive, jobQueue: JobQueue, holder: String,
        interval: Duration = .seconds(10), publicURL: String, logger: Logger
    ) {
        self.operations = operations
        closer = LostRunCloser(log: log, archive: archive)
        self.jobQueue = jobQueue
        self.holder = holder
        self.interval = interval
        self.publicURL = publicURL
        var logger = logger
        logger[metadataKey: "loop"] = "lost-run-sweeper"
        self.logger = logger
    }

    public func run() async throws {
        let loop = SingletonLoop(name: "lost-run-sweeper", jobQueue: jobQueue, holder: holder, logger: logger)
        await cancelWhenGracefulShutdown {
            await loop.run { try await sweep() }
        }
    }

    /// One turn: fails what it finds, then waits `interval`.
    func sweep() async throws -> Duration {
        while true {
            let lost = try await operations.failLostRuns(publicURL: publicURL)
            for operation in lost {
                logger.warning(
                    "an operation's worker stopped renewing its lease: it failed as worker_lost",
                    metadata: ["operation_id": "\(operation.id.uuidString.lowercased())", "runner": "\(operation.runner ?? "")"])
                await closer.close(operation, logger: logger)
            }
            if lost.count < 100 { return interval }
        }
    }
}
