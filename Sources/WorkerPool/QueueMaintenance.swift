import Logging
import NIOConcurrencyHelpers
import Queue

/// The singleton loops a worker hosts: the delayed-job promoter, the reclaimer of dead
/// workers' and stalled jobs, and the sampler of every queue's throughput (for dashboards). Each runs under its own Redis lease, so across any number of
/// workers exactly one of each runs at a time.
struct QueueMaintenance: Sendable {
    let jobQueue: JobQueue
    let options: Worker.Options
    let logger: Logger
    /// When the reclaimer last reached Redis, and since when without a gap.
    private let contact = NIOLockedValueBox(Contact())

    private struct Contact {
        var lastTurn: ContinuousClock.Instant?
        var since: ContinuousClock.Instant?
    }

    init(jobQueue: JobQueue, options: Worker.Options, logger: Logger) {
        self.jobQueue = jobQueue
        self.options = options
        self.logger = logger
    }

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
            group.addTask {
                await SingletonLoop(name: "sampler", jobQueue: jobQueue, holder: options.workerID, logger: logger).run {
                    try await jobQueue.sampleThroughput(queues: try await jobQueue.knownQueues())
                    return options.sampleInterval
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

    /// Redelivers the jobs of dead workers and stalled jobs, unless Redis or this process has
    /// just come back from a gap.
    ///
    /// After Redis restarts (or this reclaimer could not reach it for a while), every heartbeat
    /// is old and every pending entry's idle time counts the gap: live workers would look dead
    /// and their running jobs stalled. So nothing is reclaimed until Redis has been up, and this
    /// reclaimer in touch with it, for ``Worker/Options/deadWorkerAfter``: long enough for every
    /// live worker to beat again and refresh what it runs (see `Worker.heartbeatLoop`).
    func reclaim() async throws {
        let uptime = try await jobQueue.serverUptime()
        let now = ContinuousClock.now
        // Turns come every reclaimInterval while this process holds the lease and reaches Redis;
        // a longer pause means it lost one or the other. Its first turn counts as after a gap too:
        // the lease may have just moved here from a holder cut off with the rest of the fleet.
        // `lastTurn` is when the previous turn ended well: a turn that failed, or a lease lost for a
        // while, leaves it behind, so even a short outage counts.
        let gap = options.reclaimInterval + .seconds(2)
        let (steadySince, newGap) = contact.withLockedValue { contact -> (ContinuousClock.Instant, Bool) in
            var newGap = false
            if contact.since == nil || now - (contact.lastTurn ?? now) > gap {
                contact.since = now
                newGap = true
            }
            return (contact.since ?? now, newGap)
        }
        // Only a turn that ends well counts (not a `defer`, which a throw runs too): on a Redis
        // Cluster one master can fail while the others answer, and the turns that fail on it
        // must make a gap, so its entries, whose idle times count its outage, wait too.
        let grace = options.deadWorkerAfter
        guard uptime >= grace, now - steadySince >= grace else {
            if newGap || uptime < options.reclaimInterval {
                logger.info(
                    "reclaimer waits --dead-worker-after for live workers to beat again before reclaiming",
                    metadata: ["redis_uptime": "\(uptime)", "in_touch_for": "\(now - steadySince)", "wait": "\(grace)"])
            }
            contact.withLockedValue { $0.lastTurn = .now }
            return
        }
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
        contact.withLockedValue { $0.lastTurn = .now }
    }
}
