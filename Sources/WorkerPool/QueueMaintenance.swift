import Logging
import Queue

/// The singleton loops a worker hosts: the delayed-job promoter and the reclaimer of dead
/// workers' and stalled jobs. Each runs under its own Redis lease, so across any number of
/// workers exactly one of each runs at a time.
struct QueueMaintenance: Sendable {
    let jobQueue: JobQueue
    let options: Worker.Options
    let logger: Logger

    func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                await SingletonLoop(name: "promoter", jobQueue: jobQueue, holder: options.workerID, logger: logger).run {
                    try await promote()
                }
            }
            group.addTask {
                await SingletonLoop(name: "reclaimer", jobQueue: jobQueue, holder: options.workerID, logger: logger).run {
                    try await reclaim()
                    return options.reclaimInterval
                }
            }
        }
    }

    /// Promotes due jobs of every queue; returns how long to wait for the next.
    func promote() async throws -> Duration {
        var wait = options.promoteInterval
        for queue in try await jobQueue.knownQueues() {
            while true {
                let (moved, nextDue) = try await jobQueue.promoteDue(queue: queue)
                if let nextDue { wait = min(wait, nextDue) }
                if moved > 0 { logger.debug("promoted delayed jobs", metadata: ["queue": "\(queue)", "jobs": "\(moved)"]) }
                if moved < 1000 { break }
            }
        }
        return max(wait, .milliseconds(5))
    }

    func reclaim() async throws {
        let dead = try await jobQueue.reclaimDeadWorkers(deadAfter: options.deadWorkerAfter)
        if dead.requeued + dead.deadLettered > 0 {
            logger.warning(
                "reclaimed jobs of dead workers", metadata: ["requeued": "\(dead.requeued)", "dead_lettered": "\(dead.deadLettered)"])
        }
        for queue in try await jobQueue.knownQueues() {
            let stalled = try await jobQueue.reclaimStalled(queue: queue, minimumIdle: .seconds(1))
            if stalled.requeued + stalled.deadLettered > 0 {
                logger.warning(
                    "reclaimed stalled jobs",
                    metadata: ["queue": "\(queue)", "requeued": "\(stalled.requeued)", "dead_lettered": "\(stalled.deadLettered)"])
            }
        }
    }
}
