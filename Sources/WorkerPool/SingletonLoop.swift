import Logging
import Queue

/// Runs a loop in exactly one process at a time, under a Redis lease (SET NX PX, renewed on
/// every turn, released when the loop ends). Processes that do not hold the lease try again
/// every third of its time to live, so a crashed holder is replaced within one TTL.
public struct SingletonLoop: Sendable {
    public let name: String
    public let jobQueue: JobQueue
    public let holder: String
    public let leaseTTL: Duration
    let logger: Logger

    public init(name: String, jobQueue: JobQueue, holder: String, leaseTTL: Duration = .seconds(15), logger: Logger) {
        self.name = name
        self.jobQueue = jobQueue
        self.holder = holder
        self.leaseTTL = leaseTTL
        var logger = logger
        logger[metadataKey: "loop"] = "\(name)"
        self.logger = logger
    }

    /// Runs `turn` whenever this process holds the lease, until the task is cancelled. `turn`
    /// returns how long to wait before the next turn (capped at a third of the lease TTL so the
    /// lease is renewed in time).
    public func run(_ turn: @Sendable () async throws -> Duration) async {
        var held = false
        var failures = 0
        while !Task.isCancelled {
            var wait = leaseTTL / 3
            do {
                let nowHeld = try await jobQueue.acquireLease(name, holder: holder, ttl: leaseTTL)
                if nowHeld != held {
                    logger.info(nowHeld ? "took the lease" : "lost the lease")
                    held = nowHeld
                }
                if held {
                    wait = min(wait, try await turn())
                }
                failures = 0
            } catch {
                failures += 1
                if failures == 1 || failures % 10 == 0 {
                    logger.warning("singleton loop failed; retrying", metadata: ["error": "\(error)"])
                }
                wait = .milliseconds(min(5000, 100 << min(failures, 6)))
            }
            do {
                try await Task.sleep(for: wait)
            } catch {
                break
            }
        }
        if held {
            try? await jobQueue.releaseLease(name, holder: holder)
        }
    }
}
